//! What can be wrong with a config file, always with where.

use std::path::{Path, PathBuf};

use super::span::Position;

/// A config file that cannot be used. Display is `FILE:LINE:COL: what is
/// wrong` (1-based), or `FILE: what is wrong` when the file could not be
/// read at all.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read config file: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Not TOML, or not the config's shape: an unknown key, a value of the
    /// wrong type, a missing key.
    #[error("{}:{}:{}: {message}", path.display(), at.line, at.col)]
    Syntax {
        path: PathBuf,
        at: Position,
        message: String,
    },
    /// Well-formed, but a value is not acceptable (a bad address, a missing
    /// certificate file, a duplicate name...).
    #[error("{}:{}:{}: {message}", path.display(), at.line, at.col)]
    Invalid {
        path: PathBuf,
        at: Position,
        message: String,
    },
}

impl ConfigError {
    /// The config file concerned.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } | Self::Syntax { path, .. } | Self::Invalid { path, .. } => {
                path
            }
        }
    }

    /// Where in the file, when known.
    pub fn position(&self) -> Option<Position> {
        match self {
            Self::Read { .. } => None,
            Self::Syntax { at, .. } | Self::Invalid { at, .. } => Some(*at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_and_column() {
        let e = ConfigError::Invalid {
            path: "a/casarray.toml".into(),
            at: Position { line: 3, col: 7 },
            message: "bad".into(),
        };
        assert_eq!(e.to_string(), "a/casarray.toml:3:7: bad");
        assert_eq!(e.position(), Some(Position { line: 3, col: 7 }));
        let e = ConfigError::Read {
            path: "x.toml".into(),
            error: std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        };
        assert_eq!(e.to_string(), "x.toml: cannot read config file: gone");
        assert_eq!(e.path(), Path::new("x.toml"));
    }
}
