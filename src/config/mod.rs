//! The config file: model, defaults (the Exchange profile) and validation.
//!
//! [`load`] reads a file, [`parse`] turns its text into a validated
//! [`Config`]. Every error names the file and the 1-based line and column of
//! the key or value at fault: `casarray.toml:12:11: member.address: ...`.
//!
//! Layers: `raw` (serde structs mirroring the TOML, unknown keys refused,
//! spans kept), `validate` (defaults, checks, path resolution), `values`
//! (checks of single values), `ca` (the members' CA bundle, read at load),
//! `duration`, `profile` (the built-in Exchange services), `span` (byte
//! offsets to line:col), `error`.

mod ca;
mod cidr;
mod cluster;
mod duration;
mod error;
mod model;
mod profile;
mod raw;
mod span;
mod validate;
mod values;

use std::path::Path;

pub use cidr::Cidr;
pub use cluster::ClusterConfig;
pub use duration::{format_duration, parse_duration};
pub use error::ConfigError;
pub use model::*;
pub use profile::{exchange_profile, Profile};
pub use span::Position;
/// The config's own check of a host name, for edits made outside the file
/// (the admin API with `[cluster]`).
pub(crate) use values::dns_name;

/// Reads and validates the config file at `path`. A missing or unreadable
/// file is a [`ConfigError::Read`] naming it.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text, path)
}

/// Validates config `text` as if read from `path`: relative paths are
/// resolved against `path`'s directory, and the certificate, key and token
/// files they name must exist.
pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let raw = raw::from_str(text).map_err(|e| syntax_error(&e, text, path))?;
    validate::validate(raw, text, path)
}

/// Validates only the `[array]` table of `text` (the rest may be missing or
/// incomplete), with the same checks and errors as [`parse`]: for tools that
/// write a config in steps, like `casarray array new`. Returns the array and
/// the service profile it selects.
pub fn parse_array(text: &str, path: &Path) -> Result<(ArrayConfig, Profile), ConfigError> {
    let raw = raw::from_str(text).map_err(|e| syntax_error(&e, text, path))?;
    validate::validate_array(raw, text, path)
}

/// toml's error (bad TOML, unknown key, wrong type, missing key) placed at
/// its span, or at the start of the file when it has none.
fn syntax_error(e: &toml::de::Error, text: &str, path: &Path) -> ConfigError {
    let offset = e.span().map_or(0, |s| s.start);
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
        .replace("unknown field", "unknown key")
        .replace("missing field", "missing key");
    ConfigError::Syntax {
        path: path.to_path_buf(),
        at: span::position(text, offset),
        message,
    }
}

#[cfg(test)]
mod tests;
