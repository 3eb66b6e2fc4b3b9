//! The admin bearer token: read from `[admin] token_file`, checked in
//! constant time.
//!
//! The file holds the token on one line; trailing whitespace (the newline an
//! editor adds) is trimmed. An empty file is an error, never "no token".

use std::path::Path;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{digest, SHA256};
use http::header::AUTHORIZATION;
use http::HeaderMap;

use super::error::AdminError;

/// The token mutating admin calls must present.
pub struct Token {
    /// SHA-256 of the token: comparing digests keeps the comparison's time
    /// independent of both the token's content and its length.
    digest: [u8; 32],
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// Reads the token from `path`.
    pub fn load(path: &Path) -> Result<Self, AdminError> {
        let text = std::fs::read_to_string(path).map_err(|error| AdminError::TokenRead {
            path: path.to_path_buf(),
            error,
        })?;
        warn_if_readable_by_others(path);
        Self::parse(&text).map_err(|bad| match bad {
            BadToken::Empty => AdminError::TokenEmpty {
                path: path.to_path_buf(),
            },
            BadToken::Invalid => AdminError::TokenInvalid {
                path: path.to_path_buf(),
            },
        })
    }

    /// The token in `text`: trailing whitespace trimmed, then it must be
    /// non-empty printable ASCII without spaces.
    fn parse(text: &str) -> Result<Self, BadToken> {
        let token = text.trim_end();
        if token.is_empty() {
            return Err(BadToken::Empty);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(BadToken::Invalid);
        }
        Ok(Token {
            digest: sha256(token.as_bytes()),
        })
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`.
    pub fn verify(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = bearer(headers) else {
            return false;
        };
        verify_slices_are_equal(&sha256(presented), &self.digest).is_ok()
    }
}

enum BadToken {
    Empty,
    Invalid,
}

/// The credentials of an `Authorization: Bearer ...` header (the scheme is
/// case-insensitive, as RFC 9110 says).
fn bearer(headers: &HeaderMap) -> Option<&[u8]> {
    let value = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = value.split_at(value.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return None;
    }
    let credentials = rest.trim_ascii();
    (!credentials.is_empty()).then_some(credentials)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, bytes).as_ref());
    out
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(
                file = %path.display(),
                "the admin token file is readable by other users (chmod 600 it)"
            );
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        h
    }

    fn token(text: &str) -> Token {
        Token::parse(text).ok().unwrap()
    }

    #[test]
    fn trailing_newline_is_trimmed() {
        let t = token("s3cret\n");
        assert!(t.verify(&with_auth("Bearer s3cret")));
        assert!(token("s3cret\r\n").verify(&with_auth("Bearer s3cret")));
    }

    #[test]
    fn wrong_missing_or_other_scheme_is_refused() {
        let t = token("s3cret");
        assert!(!t.verify(&HeaderMap::new()));
        assert!(!t.verify(&with_auth("Bearer s3cre")));
        assert!(!t.verify(&with_auth("Bearer s3cret2")));
        assert!(!t.verify(&with_auth("Basic s3cret")));
        assert!(!t.verify(&with_auth("Bearer")));
        assert!(!t.verify(&with_auth("Bearer ")));
        assert!(!t.verify(&with_auth("s3cret")));
    }

    #[test]
    fn scheme_is_case_insensitive() {
        let t = token("s3cret");
        assert!(t.verify(&with_auth("bearer s3cret")));
        assert!(t.verify(&with_auth("BEARER  s3cret")));
    }

    #[test]
    fn empty_and_unsendable_tokens_are_errors() {
        assert!(matches!(Token::parse(""), Err(BadToken::Empty)));
        assert!(matches!(Token::parse("\n\n"), Err(BadToken::Empty)));
        assert!(matches!(Token::parse("two words"), Err(BadToken::Invalid)));
        assert!(matches!(Token::parse("caf\u{e9}"), Err(BadToken::Invalid)));
    }

    #[test]
    fn load_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("admin.token");
        std::fs::write(&path, "\n").unwrap();
        let e = Token::load(&path).unwrap_err();
        assert!(matches!(e, AdminError::TokenEmpty { .. }), "{e}");
        assert!(e.to_string().contains("admin.token"), "{e}");
        let e = Token::load(&dir.path().join("missing")).unwrap_err();
        assert!(matches!(e, AdminError::TokenRead { .. }), "{e}");
        std::fs::write(&path, "abc\n").unwrap();
        assert!(Token::load(&path).unwrap().verify(&with_auth("Bearer abc")));
    }
}
