//! HTTPS to members: the rustls client configuration, the verifier that
//! accepts any member certificate (`[member_tls] verify = false`), and
//! handshake failures in plain words.
//!
//! One [`ClientConfig`] is made per config (in the snapshot) and shared by
//! every connection and health probe of that config, so its session cache
//! lets new connections to a member resume instead of making full
//! handshakes. The crypto provider is aws-lc-rs, explicitly; ALPN offers
//! `http/1.1` only (members get HTTP/1.1, see `connect`).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::config::{Config, MemberTlsConfig};

/// Why the members' TLS client configuration could not be made.
#[derive(Debug, thiserror::Error)]
pub enum MemberTlsError {
    /// Verification is on but `[member_tls] ca` is not set (the config
    /// validation refuses this; kept for a config built by hand).
    #[error("member TLS: verify is on but [member_tls] has no ca")]
    NoCa,
    /// A CA certificate was refused as a trust anchor.
    #[error("member TLS: {path}: certificate {index} cannot be used as a CA")]
    BadCa {
        path: String,
        index: usize,
        source: rustls::Error,
    },
    /// The provider offers no usable protocol version.
    #[error("member TLS: cannot set the protocol versions: {0}")]
    Versions(rustls::Error),
}

/// The client configuration for the members of `cfg` that use TLS, or
/// `None` when none does. Logs a warning when their certificates are not
/// verified.
pub fn client_config(cfg: &Config) -> Result<Option<Arc<ClientConfig>>, MemberTlsError> {
    let tls_members: Vec<&str> = cfg
        .members
        .iter()
        .filter(|m| m.tls)
        .map(|m| m.name.as_str())
        .collect();
    if tls_members.is_empty() {
        return Ok(None);
    }
    if !cfg.member_tls.verify {
        tracing::warn!(
            "member_tls.verify = false: the certificates of {} are not checked; anyone on the path to them can read and change the traffic",
            tls_members.join(", ")
        );
    }
    build(&cfg.member_tls).map(Some)
}

/// A client configuration per `[member_tls]`: TLS 1.2 and 1.3, ALPN
/// `http/1.1`, no client certificate, the default in-memory session cache.
pub fn build(cfg: &MemberTlsConfig) -> Result<Arc<ClientConfig>, MemberTlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(MemberTlsError::Versions)?;
    let mut config = if cfg.verify {
        let ca = cfg.ca.as_ref().ok_or(MemberTlsError::NoCa)?;
        let mut roots = RootCertStore::empty();
        for (i, cert) in ca.certs.iter().enumerate() {
            roots
                .add(cert.clone())
                .map_err(|source| MemberTlsError::BadCa {
                    path: ca.path.display().to_string(),
                    index: i + 1,
                    source,
                })?;
        }
        // The provider's signature algorithms check chains and handshakes.
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Accepts any member certificate, whoever issued it and whatever it names
/// (`[member_tls] verify = false`), but still checks that the handshake is
/// signed by that certificate's key: the connection is encrypted to
/// whoever holds it, though nothing says who that is.
#[derive(Debug)]
struct AnyCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Why a TLS handshake with a member failed, in words an operator can act
/// on (health details and logs show it), followed by rustls's own words.
pub fn describe_handshake_error(e: &std::io::Error) -> String {
    let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => format!(
                "the member closed the connection during the TLS handshake (does it serve HTTPS on this port? if not, set tls = false): {e}"
            ),
            _ => e.to_string(),
        };
    };
    let why = match tls {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "certificate not trusted: it is not issued by a CA in member_tls.ca"
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                "certificate name mismatch: the certificate does not carry tls_server_name"
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired"
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet"
            }
            CertificateError::BadSignature => {
                "certificate not trusted: its signature does not verify with the key of the CA in member_tls.ca that has its issuer's name (another CA of the same name?)"
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "certificate is not for TLS servers (extended key usage)"
            }
            _ => "certificate refused",
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            "the member does not speak TLS (is it plain HTTP? then set tls = false)"
        }
        rustls::Error::AlertReceived(_) => "the member refused the handshake",
        rustls::Error::NoCertificatesPresented => "the member sent no certificate",
        rustls::Error::PeerIncompatible(_) => {
            "no TLS version or cipher suite in common with the member"
        }
        _ => "handshake failed",
    };
    format!("{why} ({tls})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CaBundle;

    fn io(e: rustls::Error) -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn handshake_errors_in_plain_words() {
        let e = describe_handshake_error(&io(rustls::Error::InvalidCertificate(
            CertificateError::UnknownIssuer,
        )));
        assert!(
            e.starts_with("certificate not trusted: it is not issued by a CA in member_tls.ca ("),
            "{e}"
        );
        let e = describe_handshake_error(&io(rustls::Error::InvalidCertificate(
            CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("ex1.lab.local").unwrap(),
                presented: vec!["other.lab.local".into()],
            },
        )));
        assert!(e.starts_with("certificate name mismatch"), "{e}");
        assert!(
            e.contains("ex1.lab.local") && e.contains("other.lab.local"),
            "{e}"
        );
        let e = describe_handshake_error(&std::io::Error::from(std::io::ErrorKind::UnexpectedEof));
        assert!(e.contains("does it serve HTTPS"), "{e}");
    }

    #[test]
    fn verify_needs_a_ca() {
        let cfg = MemberTlsConfig {
            ca: None,
            verify: true,
        };
        assert!(matches!(build(&cfg), Err(MemberTlsError::NoCa)));
        let cfg = MemberTlsConfig {
            ca: None,
            verify: false,
        };
        let config = build(&cfg).unwrap();
        assert_eq!(config.alpn_protocols, [b"http/1.1".to_vec()]);
        let bad = MemberTlsConfig {
            ca: Some(CaBundle {
                path: "ca.crt".into(),
                certs: vec![CertificateDer::from(vec![0u8; 4])],
            }),
            verify: true,
        };
        let e = build(&bad).unwrap_err().to_string();
        assert!(
            e.starts_with("member TLS: ca.crt: certificate 1 cannot"),
            "{e}"
        );
    }
}
