//! `health_kind = "http"`: `GET <health path>` with the member's fqdn as
//! Host; healthy means status 200 and "200 OK" in the body, as Exchange's
//! `healthcheck.htm` answers. The probe keeps its own keep-alive
//! connection and makes a new one when the member closed it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Empty, Limited};
use hyper::client::conn::http1::SendRequest;
use rustls_pki_types::ServerName;

use super::Check;
use crate::errors::error_chain;
use crate::upstream::connect::Connector;
use crate::upstream::member::Member;

/// Largest health body read: 16 KiB (Exchange's is a few dozen bytes).
const MAX_HEALTH_BODY: usize = 16 * 1024;

/// The HTTP probe of one (member, service).
pub struct HttpCheck {
    connector: Connector,
    /// The probe's own connection, made again when it closes.
    conn: Option<SendRequest<Empty<Bytes>>>,
    address: SocketAddr,
    /// The member's TLS server name; `None`: plain HTTP.
    tls: Option<ServerName<'static>>,
    path: String,
    host: String,
}

impl HttpCheck {
    pub fn new(connector: Connector, member: &Member, path: &str) -> Self {
        HttpCheck {
            connector,
            conn: None,
            address: member.address,
            tls: member.tls.clone(),
            path: path.to_owned(),
            host: member.fqdn.clone(),
        }
    }
}

impl Check for HttpCheck {
    async fn probe(&mut self) -> Result<String, String> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(&self.path)
            .header(header::HOST, &self.host)
            .header(header::USER_AGENT, "casarray-health/1")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad health request: {e}"))?;
        let mut conn = match self.conn.take().filter(SendRequest::is_ready) {
            Some(conn) => conn,
            None => self
                .connector
                .connect(self.address, self.tls.as_ref())
                .await
                .map_err(|e| error_chain(&e))?,
        };
        let resp = conn.send_request(req).await.map_err(|e| {
            let hint = if self.tls.is_none() && e.is_parse() {
                " (the answer is not HTTP: if the member serves HTTPS on this port, set tls = true)"
            } else {
                ""
            };
            format!("request failed: {}{hint}", error_chain(&e))
        })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_HEALTH_BODY)
            .collect()
            .await
            .map_err(|e| format!("body failed: {e}"))?
            .to_bytes();
        // Kept for the next probe; a connection the member closes in the
        // meantime is not ready then, and a new one is made.
        self.conn = Some(conn);
        if status != http::StatusCode::OK {
            return Err(format!("status {}", status.as_u16()));
        }
        if memchr::memmem::find(&body, b"200 OK").is_none() {
            return Err("body lacks \"200 OK\"".to_owned());
        }
        Ok("200 OK".to_owned())
    }
}
