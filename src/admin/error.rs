//! What can stop the admin side from starting or reloading.

use std::net::SocketAddr;
use std::path::PathBuf;

use super::state::StateError;

/// The admin API cannot start (or a reload is refused) as configured.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// `listen.admin` is reachable from other hosts and no token guards it.
    #[error(
        "listen.admin {addr} is not a loopback address and [admin] token_file is not set: \
         set a token file (a bearer token for the admin API) or listen on 127.0.0.1"
    )]
    ExposedWithoutToken { addr: SocketAddr },
    /// The token file cannot be read.
    #[error("{}: cannot read the admin token: {error}", path.display())]
    TokenRead {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The token file holds no token.
    #[error("{}: the admin token file is empty", path.display())]
    TokenEmpty { path: PathBuf },
    /// The token cannot be sent in an HTTP header.
    #[error(
        "{}: the admin token must be printable ASCII without spaces (it is sent as \
         `Authorization: Bearer <token>`)",
        path.display()
    )]
    TokenInvalid { path: PathBuf },
    /// The persisted admin state cannot be used.
    #[error(transparent)]
    State(#[from] StateError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_message_says_what_to_do() {
        let e = AdminError::ExposedWithoutToken {
            addr: "0.0.0.0:9090".parse().unwrap(),
        };
        let text = e.to_string();
        assert!(text.contains("0.0.0.0:9090"), "{text}");
        assert!(text.contains("token_file"), "{text}");
    }
}
