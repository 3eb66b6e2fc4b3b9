//! Outlook Web App with forms-based authentication: the logon page, the
//! `auth.owa` form post that sets the `cadata` session cookie, the inbox,
//! one message, and logoff. Redirects and links name this server's fqdn.

use std::fmt::Write as _;

use http::header::{COOKIE, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::auth::session::{cookie_value, COOKIE_NAME, SESSION_LIFETIME_SECS};
use crate::mock::auth::token::ProxiedUser;
use crate::mock::databases::{generation_header, store_failed};
use crate::mock::directory;
use crate::mock::format::clock;
use crate::mock::format::xml::escape;
use crate::mock::http::form;
use crate::mock::http::ids;
use crate::mock::http::request::{query_param, read_body};
use crate::mock::http::response::{self, Body};
use crate::mock::shared::Shared;
use crate::mock::store::{self, Item};
use crate::mock::users::Mailbox;

/// Largest logon form read: 64 KiB.
const MAX_FORM: usize = 64 * 1024;

/// Answers `/owa/...`; `path` is lower case.
pub async fn handle(shared: &Shared, path: &str, req: Request<Incoming>) -> Response<Body> {
    match (req.method(), path) {
        (&Method::GET, "/owa" | "/owa/") => home(shared, &req).await,
        (&Method::GET, "/owa/auth/logon.aspx") => logon_page(shared, &req),
        (&Method::POST, "/owa/auth.owa") => logon(shared, req).await,
        (&Method::GET, "/owa/auth/logoff.aspx") => logoff(shared),
        (
            _,
            "/owa" | "/owa/" | "/owa/auth/logon.aspx" | "/owa/auth.owa" | "/owa/auth/logoff.aspx",
        ) => response::status(StatusCode::METHOD_NOT_ALLOWED),
        _ => response::status(StatusCode::NOT_FOUND),
    }
}

/// `https://<fqdn>/owa/auth/logon.aspx?url=<destination>&reason=<reason>`.
fn logon_url(shared: &Shared, destination: &str, reason: u8) -> String {
    format!(
        "https://{}/owa/auth/logon.aspx?url={}&reason={reason}",
        shared.fqdn,
        form::encode(destination)
    )
}

fn default_destination(shared: &Shared) -> String {
    format!("https://{}/owa/", shared.fqdn)
}

/// Where to go after logon: `destination`'s path on this server when it is
/// an OWA path, else the OWA home page (no open redirect).
fn safe_destination(shared: &Shared, destination: Option<&str>) -> String {
    let Some(dest) = destination.map(str::trim) else {
        return default_destination(shared);
    };
    let path = match dest.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http") =>
        {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
        Some(_) => return default_destination(shared),
        None => dest,
    };
    let lower = path.to_ascii_lowercase();
    let ok = (lower == "/owa" || lower.starts_with("/owa/") || lower.starts_with("/owa?"))
        && !path.contains('\\')
        && !path.chars().any(char::is_control);
    if ok {
        format!("https://{}{path}", shared.fqdn)
    } else {
        default_destination(shared)
    }
}

/// The mailbox whose valid session cookie the request carries (or the
/// identity of a request proxied from another server).
pub fn session(shared: &Shared, req: &Request<Incoming>) -> Option<Mailbox> {
    if let Some(ProxiedUser(m)) = req.extensions().get::<ProxiedUser>() {
        return Some(m.clone());
    }
    let now = clock::unix_now();
    let address = req
        .headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| cookie_value(v, COOKIE_NAME))
        .find_map(|c| shared.sealer.open(c, now))?;
    directory::lab().find(&address).cloned()
}

async fn home(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    let Some(mailbox) = session(shared, req) else {
        return response::redirect(&logon_url(shared, &default_destination(shared), 0));
    };
    let db = match shared.databases.local(&mailbox.database) {
        Ok(h) => h,
        Err(e) => return store_failed(&e),
    };
    let wanted = (query_param(req.uri(), "ae").as_deref() == Some("Item"))
        .then(|| query_param(req.uri(), "id"))
        .flatten();
    let address = mailbox.address.clone();
    match wanted {
        Some(opaque) => {
            let Some(id) = ids::item_of(&opaque, &mailbox.address) else {
                return response::status(StatusCode::NOT_FOUND);
            };
            let result = db
                .write(move |b| {
                    let item = store::get_item(b.conn(), &address, id)?;
                    if item.is_some() {
                        store::mark_read(b, &address, id)?;
                    }
                    Ok(item)
                })
                .await;
            match result {
                Ok((Some(item), generation)) => {
                    let mut resp = page(StatusCode::OK, &item_html(shared, &mailbox, &item));
                    generation_header(&mut resp, db.database(), generation);
                    resp
                }
                Ok((None, _)) => response::status(StatusCode::NOT_FOUND),
                Err(e) => store_failed(&e),
            }
        }
        None => match db
            .read(move |conn| store::list_items(conn, &address, "inbox"))
            .await
        {
            Ok(items) => page(StatusCode::OK, &inbox_html(shared, &mailbox, &items)),
            Err(e) => store_failed(&e),
        },
    }
}

fn page(status: StatusCode, html: &str) -> Response<Body> {
    response::with_body(status, response::HTML, html.to_string())
}

fn header_html(shared: &Shared, title: &str, mailbox: &Mailbox) -> String {
    let fqdn = escape(&shared.fqdn);
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{} - Outlook Web App</title></head>\n\
         <body><p>{} &lt;{}&gt; on <a href=\"https://{fqdn}/owa/\">{fqdn}</a> | \
         <a href=\"https://{fqdn}/owa/auth/logoff.aspx?Cmd=logoff&amp;src=exch\">Sign out</a></p>\n",
        escape(title),
        escape(&mailbox.display_name),
        escape(&mailbox.address),
    )
}

/// The inbox: one row per message (from, subject linking to the message,
/// date received).
fn inbox_html(shared: &Shared, mailbox: &Mailbox, items: &[Item]) -> String {
    let mut out = header_html(shared, "Inbox", mailbox);
    let _ = writeln!(out, "<h1>Inbox</h1>\n<table id=\"inbox\">");
    out.push_str("<tr><th>From</th><th>Subject</th><th>Received</th></tr>\n");
    for item in items {
        let link = format!(
            "https://{}/owa/?ae=Item&id={}",
            shared.fqdn,
            form::encode(&ids::item_id(&item.mailbox, item.id))
        );
        let _ = writeln!(
            out,
            "<tr class=\"{}\"><td>{}</td><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
            if item.is_read { "read" } else { "unread" },
            escape(&item.from_name),
            escape(&link),
            escape(&item.subject),
            clock::iso8601(item.received),
        );
    }
    out.push_str("</table>\n</body></html>\n");
    out
}

/// One message; bodies are shown as text, never as markup.
fn item_html(shared: &Shared, mailbox: &Mailbox, item: &Item) -> String {
    let mut out = header_html(shared, &item.subject, mailbox);
    let _ = write!(
        out,
        "<h1>{}</h1>\n<p>From: {} &lt;{}&gt;<br/>To: {}<br/>Cc: {}<br/>Received: {}</p>\n<pre>{}</pre>\n</body></html>\n",
        escape(&item.subject),
        escape(&item.from_name),
        escape(&item.from_address),
        escape(&item.to.join("; ")),
        escape(&item.cc.join("; ")),
        clock::iso8601(item.received),
        escape(&item.body),
    );
    out
}

fn logon_page(shared: &Shared, req: &Request<Incoming>) -> Response<Body> {
    let destination = safe_destination(shared, query_param(req.uri(), "url").as_deref());
    let reason = query_param(req.uri(), "reason").unwrap_or_default();
    let message = if reason == "2" {
        "<p class=\"error\">The user name or password you entered isn't correct. Try entering it again.</p>\n"
    } else {
        ""
    };
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Outlook Web App</title></head>\n\
         <body><h1>Outlook Web App</h1>\n<p>Server: {fqdn}</p>\n{message}\
         <form action=\"/owa/auth.owa\" method=\"POST\" name=\"logonForm\" autocomplete=\"off\">\n\
         <input type=\"hidden\" name=\"destination\" value=\"{dest}\">\n\
         <input type=\"hidden\" name=\"flags\" value=\"4\">\n\
         <label>Domain\\user name or e-mail: <input type=\"text\" name=\"username\"></label>\n\
         <label>Password: <input type=\"password\" name=\"password\"></label>\n\
         <input type=\"submit\" value=\"Sign in\">\n</form>\n</body></html>\n",
        fqdn = escape(&shared.fqdn),
        dest = escape(&destination),
    );
    page(StatusCode::OK, &html)
}

async fn logon(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let body = match read_body(req.into_body(), MAX_FORM).await {
        Ok(b) => b,
        Err(resp) => return resp,
    };
    let fields = form::parse(&String::from_utf8_lossy(&body));
    let destination = safe_destination(shared, form::get(&fields, "destination"));
    let username = form::get(&fields, "username")
        .unwrap_or_default()
        .to_string();
    let password = form::get(&fields, "password")
        .unwrap_or_default()
        .to_string();
    let user = crate::mock::users::normalize_logon(&username);
    let Some(mailbox) = directory::lab().authenticate(&user, &password) else {
        tracing::info!(server = %shared.name, user = %username, "OWA logon refused");
        return response::redirect(&logon_url(shared, &destination, 2));
    };
    let expires = clock::unix_now() + SESSION_LIFETIME_SECS;
    let sealed = match shared.sealer.seal(&mailbox.address, expires) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot seal session");
            return response::status(StatusCode::INTERNAL_SERVER_ERROR);
        }
    };
    let mut resp = response::redirect(&destination);
    if let Ok(v) = format!("{COOKIE_NAME}={sealed}; path=/; secure; HttpOnly").parse() {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

fn logoff(shared: &Shared) -> Response<Body> {
    let html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Outlook Web App</title></head>\n\
         <body><p>You have signed out of Outlook Web App.</p>\n\
         <p><a href=\"https://{0}/owa/\">Sign in again</a></p>\n</body></html>\n",
        escape(&shared.fqdn)
    );
    let mut resp = page(StatusCode::OK, &html);
    let clear =
        format!("{COOKIE_NAME}=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT; secure; HttpOnly");
    if let Ok(v) = clear.parse() {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> (tempfile::TempDir, Shared) {
        Shared::for_tests()
    }

    #[test]
    fn destinations_stay_on_owa_of_this_server() {
        let (_d, s) = shared();
        let home = "https://ex1.lab.local/owa/";
        assert_eq!(safe_destination(&s, None), home);
        assert_eq!(
            safe_destination(&s, Some("https://mail.lab.com/owa/?ae=Item&id=1")),
            "https://ex1.lab.local/owa/?ae=Item&id=1"
        );
        assert_eq!(safe_destination(&s, Some("/owa/")), home);
        assert_eq!(safe_destination(&s, Some("https://evil.example/")), home);
        assert_eq!(safe_destination(&s, Some("//evil.example/owa/")), home);
        assert_eq!(safe_destination(&s, Some("javascript:alert(1)")), home);
        assert_eq!(safe_destination(&s, Some("/owa\\..\\x")), home);
    }

    #[test]
    fn inbox_links_name_the_server_and_escape() {
        let (_d, s) = shared();
        let mb = Mailbox {
            address: "alice@lab.com".into(),
            display_name: "Alice".into(),
            database: "DB01".into(),
            guid: crate::mock::users::mailbox_guid("alice@lab.com"),
        };
        let item = Item {
            id: 7,
            mailbox: mb.address.clone(),
            folder: "inbox".into(),
            subject: "<script>x</script>".into(),
            body: String::new(),
            body_type: store::BodyType::Text,
            from_address: "bob@lab.com".into(),
            from_name: "Bob".into(),
            to: vec![],
            cc: vec![],
            received: 0,
            is_read: false,
            message_id: None,
            headers: String::new(),
        };
        let html = inbox_html(&s, &mb, &[item]);
        assert!(html.contains("https://ex1.lab.local/owa/?ae=Item&amp;id="));
        assert!(html.contains("&lt;script&gt;"));
        assert!(!html.contains("<script>"));
    }
}
