//! PEM files the mock server reads: its own TLS certificate and key
//! (`--tls-cert`, `--tls-key`), and the array's shared key whose DER seeds
//! the OWA cookie key (`--shared-key`).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// A TLS acceptor (aws-lc-rs, TLS 1.2 and 1.3, ALPN h2 and http/1.1) for
/// the chain in `cert` and the key in `key`.
pub fn tls_acceptor(cert: &Path, key: &Path) -> anyhow::Result<TlsAcceptor> {
    let chain = load_chain(cert)?;
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("reading private key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .with_context(|| format!("certificate {} does not fit its key", cert.display()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn load_chain(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading certificate {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("reading certificate {}", path.display()))?;
    anyhow::ensure!(!chain.is_empty(), "no certificate in {}", path.display());
    Ok(chain)
}

/// The DER bytes of the private key in `path` (PKCS#8 for keys rcgen
/// writes).
pub fn shared_secret(path: &Path) -> anyhow::Result<Vec<u8>> {
    let key = PrivateKeyDer::from_pem_file(path)
        .with_context(|| format!("reading shared key {}", path.display()))?;
    Ok(key.secret_der().to_vec())
}

/// Checks that `path` holds at least one certificate.
pub fn check_certificate(path: &Path) -> anyhow::Result<()> {
    load_chain(path).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_generated_pem() {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["ex1.lab.local".to_string()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let cert_path = dir.path().join("c.crt");
        let key_path = dir.path().join("c.key");
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        assert!(tls_acceptor(&cert_path, &key_path).is_ok());
        assert_eq!(shared_secret(&key_path).unwrap(), key.serialize_der());
        check_certificate(&cert_path).unwrap();
        assert!(check_certificate(&key_path).is_err());
        assert!(shared_secret(&dir.path().join("missing")).is_err());
    }
}
