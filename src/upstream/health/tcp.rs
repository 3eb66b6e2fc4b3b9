//! `health_kind = "tcp"`: the member accepts a connection (and, for a
//! member with `tls = true`, completes the TLS handshake with a certificate
//! the array trusts). Nothing is sent; the connection is closed at once.

use std::net::SocketAddr;

use rustls_pki_types::ServerName;

use super::Check;
use crate::errors::error_chain;
use crate::upstream::dial::Dialer;

/// The TCP probe of one (member, service).
pub struct TcpCheck {
    dialer: Dialer,
    address: SocketAddr,
    tls: Option<ServerName<'static>>,
}

impl TcpCheck {
    /// Probes `address`, with a TLS handshake as `tls` when given.
    pub fn new(dialer: Dialer, address: SocketAddr, tls: Option<ServerName<'static>>) -> Self {
        TcpCheck {
            dialer,
            address,
            tls,
        }
    }
}

impl Check for TcpCheck {
    async fn probe(&mut self) -> Result<String, String> {
        let stream = self
            .dialer
            .dial(self.address, self.tls.as_ref())
            .await
            .map_err(|e| error_chain(&e))?;
        drop(stream);
        Ok(match self.tls {
            Some(_) => "connected (TLS)".to_owned(),
            None => "connected".to_owned(),
        })
    }
}
