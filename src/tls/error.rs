//! The errors of the tls module: every message names the file and the reason.

use std::path::PathBuf;

/// Why a certificate, a key or a watch could not be set up.
///
/// Every message starts with the file it concerns, for example
/// `certs/x.crt: no certificate found`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// The file could not be read.
    #[error("{}: cannot read", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The file holds no `CERTIFICATE` section.
    #[error("{}: no certificate found", path.display())]
    NoCertificate { path: PathBuf },

    /// The file holds no private key section.
    #[error("{}: no private key found", path.display())]
    NoPrivateKey { path: PathBuf },

    /// The PEM text is malformed (bad base64, a missing END line, ...).
    #[error("{}: invalid PEM: {reason}", path.display())]
    Pem { path: PathBuf, reason: String },

    /// A certificate could not be parsed as X.509.
    #[error("{}: invalid certificate: {reason}", path.display())]
    BadCertificate { path: PathBuf, reason: String },

    /// The private key is of a type or curve the provider cannot use.
    #[error("{}: unsupported private key: {reason}", path.display())]
    UnsupportedKey { path: PathBuf, reason: String },

    /// The private key is not the one the leaf certificate was issued for.
    #[error("{}: private key does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch { key: PathBuf, cert: PathBuf },

    /// The leaf certificate's `notAfter` is in the past.
    #[error("{}: certificate expired on {not_after}", path.display())]
    Expired {
        path: PathBuf,
        /// RFC 3339, UTC.
        not_after: String,
    },

    /// The leaf certificate's `notBefore` is in the future.
    #[error("{}: certificate is not valid before {not_before}", path.display())]
    NotYetValid {
        path: PathBuf,
        /// RFC 3339, UTC.
        not_before: String,
    },

    /// A file watch could not be set up.
    #[error("{}: cannot watch: {reason}", path.display())]
    Watch { path: PathBuf, reason: String },
}
