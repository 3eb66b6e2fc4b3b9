//! Test fixtures: a throw-away CA issuing leaf certificates into a temp dir.

use std::path::{Path, PathBuf};

use super::time_fmt::{now_unix, set_validity};
use crate::config::CertKeyPaths;

/// One day in seconds.
pub(crate) const DAY: i64 = 86_400;

/// A CA and a temporary directory its certificates are written to.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    ca_key: rcgen::KeyPair,
    ca_params: rcgen::CertificateParams,
    ca_pem: String,
}

impl Pki {
    pub(crate) fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name = rcgen::DistinguishedName::new();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Test Lab CA");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        set_validity(&mut ca_params, now_unix() - DAY, now_unix() + 3650 * DAY);
        let ca_pem = ca_params.self_signed(&ca_key).unwrap().pem();
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca_key,
            ca_params,
            ca_pem,
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The CA certificate as PEM.
    pub(crate) fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Issues a leaf for `names`, valid from now+`from` to now+`until`
    /// seconds, written to `<stem>.crt` (leaf then CA) and `<stem>.key`.
    pub(crate) fn leaf(&self, stem: &str, names: &[&str], from: i64, until: i64) -> CertKeyPaths {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(first) = names.first() {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, *first);
        }
        set_validity(&mut params, now_unix() + from, now_unix() + until);
        let issuer = rcgen::Issuer::from_params(&self.ca_params, &self.ca_key);
        let cert = params.signed_by(&key, &issuer).unwrap();
        let paths = CertKeyPaths {
            cert: self.dir().join(format!("{stem}.crt")),
            key: Some(self.dir().join(format!("{stem}.key"))),
        };
        std::fs::write(&paths.cert, format!("{}{}", cert.pem(), self.ca_pem)).unwrap();
        std::fs::write(paths.key.as_ref().unwrap(), key.serialize_pem()).unwrap();
        paths
    }

    /// Writes certificate and key of `paths` into one `<cert stem>.pem` bundle.
    pub(crate) fn bundle(&self, paths: &CertKeyPaths) -> PathBuf {
        let cert = std::fs::read_to_string(&paths.cert).unwrap();
        let key = std::fs::read_to_string(paths.key.as_ref().unwrap()).unwrap();
        let out = paths.cert.with_extension("pem");
        std::fs::write(&out, format!("{cert}{key}")).unwrap();
        out
    }
}

/// The `[tls]` section serving `default` and `sni`, resumption on.
pub(crate) fn tls_config(
    default: CertKeyPaths,
    sni: Vec<CertKeyPaths>,
) -> crate::config::TlsConfig {
    crate::config::TlsConfig {
        default,
        sni,
        handshake_timeout: std::time::Duration::from_secs(10),
        session_resumption: true,
        watch: false,
    }
}

/// What a client saw after a completed in-memory handshake.
pub(crate) struct Handshake {
    /// SHA-256 of the leaf certificate the server sent, lowercase hex.
    pub leaf_sha256: String,
    pub alpn: Option<Vec<u8>>,
    pub version: Option<rustls::ProtocolVersion>,
}

/// Runs a TLS handshake in memory between a client trusting `ca_pem` and
/// `server`. `server_name` an IP address means no SNI is sent.
pub(crate) fn handshake(
    server: std::sync::Arc<rustls::ServerConfig>,
    ca_pem: &str,
    server_name: &str,
) -> Result<Handshake, rustls::Error> {
    use rustls_pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let mut client_config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    client_config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let name = rustls_pki_types::ServerName::try_from(server_name.to_owned()).unwrap();
    let mut client = rustls::ClientConnection::new(std::sync::Arc::new(client_config), name)?;
    let mut server = rustls::ServerConnection::new(server)?;

    for _ in 0..20 {
        if !client.is_handshaking() && !server.is_handshaking() {
            break;
        }
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        server.read_tls(&mut wire.as_slice()).unwrap();
        server.process_new_packets()?;
        let mut wire = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut wire).unwrap();
        }
        client.read_tls(&mut wire.as_slice()).unwrap();
        client.process_new_packets()?;
    }
    assert!(!client.is_handshaking(), "handshake did not finish");
    let leaf = client
        .peer_certificates()
        .and_then(|certs| certs.first())
        .expect("server sent a certificate");
    Ok(Handshake {
        leaf_sha256: super::cert_info::sha256_hex(leaf),
        alpn: client.alpn_protocol().map(<[u8]>::to_vec),
        version: client.protocol_version(),
    })
}
