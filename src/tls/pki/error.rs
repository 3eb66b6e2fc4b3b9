//! The errors of the PKI workflow.

/// Why a key, request or certificate could not be made, read or matched.
///
/// Messages say which input was wrong (`CA key`, `certificate request`,
/// ...); the CLI adds the file name.
/// Longest validity `issue` and `self_signed` accept (36 500 days).
pub const MAX_DAYS: u32 = 36_500;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A PEM input is malformed.
    #[error("{what}: invalid PEM: {reason}")]
    Pem { what: &'static str, reason: String },

    /// A PEM input lacks the section it should hold.
    #[error("{what}: no {item} found")]
    Missing {
        what: &'static str,
        item: &'static str,
    },

    /// A certificate could not be parsed.
    #[error("{what}: invalid certificate: {reason}")]
    BadCertificate { what: &'static str, reason: String },

    /// A private key could not be parsed or used.
    #[error("{what}: unsupported private key: {reason}")]
    BadKey { what: &'static str, reason: String },

    /// The certificate request is malformed or its signature is wrong.
    #[error("certificate request: {reason}")]
    BadRequest { reason: String },

    /// The private key is not the one the certificate was issued for.
    #[error("the private key does not match the certificate (subject {subject})")]
    KeyMismatch { subject: String },

    /// The CA key is not the one of the CA certificate.
    #[error("the CA key does not match the CA certificate (subject {subject})")]
    CaKeyMismatch { subject: String },

    /// The issuing certificate is not a CA.
    #[error("CA certificate: {subject} is not a CA (no basicConstraints CA:TRUE)")]
    NotACa { subject: String },

    /// A chain certificate did not sign the certificate before it.
    #[error("chain: {subject} is not signed by the next certificate ({issuer}): {reason}")]
    BrokenChain {
        subject: String,
        issuer: String,
        reason: String,
    },

    /// A host name or CA name is unusable.
    #[error("invalid name {name:?}: {reason}")]
    InvalidName { name: String, reason: &'static str },

    /// The validity period asked for is out of range.
    #[error("invalid validity {days} days: must be 1 to {max}", max = MAX_DAYS)]
    InvalidDays { days: u32 },

    /// The random number generator failed.
    #[error("the system random number generator failed")]
    Random,

    /// rcgen refused to build or sign.
    #[error("{what}")]
    Rcgen {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
}
