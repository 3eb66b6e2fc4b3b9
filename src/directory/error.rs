//! What can go wrong editing or reading the directory (the config file).

use std::path::PathBuf;

use crate::config::ConfigError;

/// A directory operation that could not be done. The file is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// The config file could not be read.
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The config file is invalid as it stands.
    #[error(transparent)]
    Config(ConfigError),
    /// The edit would make the config invalid; nothing was written.
    #[error("refused (nothing written): the result would be invalid: {0}")]
    Refused(ConfigError),
    /// A value the config would refuse (checked without a file: the
    /// cluster's directory in etcd); nothing was changed.
    #[error("refused (nothing changed): {key}: {why}")]
    BadValue { key: &'static str, why: String },
    /// Names that match no `[[database]]`.
    #[error("{}: no database named {} (databases: {})", path.display(), quoted(names), list_or_none(known))]
    UnknownDatabase {
        path: PathBuf,
        names: Vec<String>,
        known: Vec<String>,
    },
    /// `--all` on a file without databases, or an empty name list.
    #[error("{}: no database selected: {why}", path.display())]
    NoDatabase { path: PathBuf, why: String },
    /// `array new` on a file that already defines another array.
    #[error("{}: an array is already defined: \"{name}\" (fqdn {fqdn}, site {site}); edit [array] to change it", path.display())]
    ArrayExists {
        path: PathBuf,
        name: String,
        fqdn: String,
        site: String,
    },
    /// The file's layout is not one this tool can edit (for example
    /// `database` as something other than an array of tables).
    #[error("{}: cannot edit: {why}", path.display())]
    Layout { path: PathBuf, why: String },
    /// The file kept changing under us while we edited it.
    #[error("{}: the file changed during the edit, try again", path.display())]
    Busy { path: PathBuf },
    /// The new file could not be written.
    #[error("{}: cannot write: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("\"{n}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_database_names_them() {
        let e = DirectoryError::UnknownDatabase {
            path: "c.toml".into(),
            names: vec!["DB09".into(), "X".into()],
            known: vec!["DB01".into(), "DB02".into()],
        };
        assert_eq!(
            e.to_string(),
            "c.toml: no database named \"DB09\", \"X\" (databases: DB01, DB02)"
        );
    }
}
