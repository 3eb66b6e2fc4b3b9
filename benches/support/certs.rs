//! A CA and a leaf for `mail.lab.com`, written as PEM files for the array.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, RsaKeySize,
    PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};

/// The leaf's key type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// ECDSA P-256 (`ec256`).
    P256,
    /// RSA 2048 bits (`rsa2048`).
    Rsa2048,
}

impl KeyType {
    pub fn label(self) -> &'static str {
        match self {
            KeyType::P256 => "p256",
            KeyType::Rsa2048 => "rsa2048",
        }
    }

    fn key_pair(self) -> KeyPair {
        match self {
            KeyType::P256 => KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key"),
            KeyType::Rsa2048 => {
                KeyPair::generate_rsa_for(&PKCS_RSA_SHA256, RsaKeySize::_2048).expect("RSA key")
            }
        }
    }
}

/// PEM files in a directory, and the CA to trust.
pub struct Certs {
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Makes a CA (P-256) and a leaf of `key_type` for `mail.lab.com`, written
/// to `dir/<stem>.crt` (leaf then CA) and `dir/<stem>.key`.
pub fn make(dir: &Path, stem: &str, key_type: KeyType) -> Certs {
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "casarray bench CA");
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = key_type.key_pair();
    let names = vec!["mail.lab.com".to_owned(), "autodiscover.lab.com".to_owned()];
    let mut leaf_params = CertificateParams::new(names).expect("leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "mail.lab.com");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf certificate");
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, format!("{}{}", leaf.pem(), ca_cert.pem())).expect("write cert");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("write key");
    Certs {
        ca_pem: ca_cert.pem(),
        cert,
        key,
    }
}
