//! Files of `casarray cert`: reading inputs, writing outputs safely.
//!
//! Outputs are never overwritten without `--force`. Private keys are created
//! with mode 0600 from the start (never loosened then tightened). Every
//! file is written whole before it appears under its name (the crate's
//! atomic writer), so a watching server never reads half of it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::atomic_file::{self, Mode};

/// Who may read a file being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Mode 0644: certificates, requests.
    Public,
    /// Mode 0600: private keys and bundles holding one.
    Private,
}

impl Access {
    fn mode(self) -> Mode {
        match self {
            Self::Public => Mode::Exactly(0o644),
            Self::Private => atomic_file::PRIVATE,
        }
    }
}

/// One output of a command.
#[derive(Debug)]
pub(crate) struct Output<'a> {
    pub path: PathBuf,
    pub contents: &'a str,
    pub access: Access,
}

/// The text of `path`.
pub(crate) fn read_text(path: &Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))
}

/// Writes every output, after checking that none exists unless `force`
/// (so a refusal leaves nothing half-written). Reports each file on stdout.
pub(crate) fn write_all(outputs: &[Output<'_>], force: bool) -> anyhow::Result<()> {
    if !force {
        for output in outputs {
            if output.path.exists() {
                bail!(
                    "{}: already exists; pass --force to overwrite it",
                    output.path.display()
                );
            }
        }
    }
    for output in outputs {
        write_one(output, force)?;
        let note = match output.access {
            Access::Private => " (private key: keep it secret, mode 0600)",
            Access::Public => "",
        };
        println!("wrote {}{note}", output.path.display());
    }
    Ok(())
}

fn write_one(output: &Output<'_>, force: bool) -> anyhow::Result<()> {
    let path = &output.path;
    let contents = output.contents.as_bytes();
    if force {
        return atomic_file::replace(path, contents, output.access.mode())
            .with_context(|| format!("{}: cannot write", path.display()));
    }
    atomic_file::create(path, contents, output.access.mode()).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            // It appeared after the check in `write_all`.
            anyhow::anyhow!(
                "{}: already exists; pass --force to overwrite it",
                path.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("{}: cannot create", path.display()))
        }
    })
}

/// A file name stem for a host name: `*` becomes `wildcard`, `:` (IPv6)
/// becomes `_`. Anything but a host name or IP address is refused, so a
/// name can never reach outside the output directory.
pub(crate) fn file_stem(name: &str) -> anyhow::Result<String> {
    super::pki::check_host_name(name)
        .with_context(|| format!("cannot name files after {name:?}"))?;
    Ok(name.replace('*', "wildcard").replace(':', "_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn refuses_to_overwrite_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("a.crt");
        let key = dir.path().join("a.key");
        std::fs::write(&key, "old").unwrap();
        let outputs = [
            Output {
                path: cert.clone(),
                contents: "cert",
                access: Access::Public,
            },
            Output {
                path: key.clone(),
                contents: "key",
                access: Access::Private,
            },
        ];
        let err = write_all(&outputs, false).unwrap_err().to_string();
        assert!(err.contains("a.key: already exists"), "{err}");
        assert!(!cert.exists(), "nothing written on refusal");
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "old");

        write_all(&outputs, true).unwrap();
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), "cert");
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "key");
        let leftovers = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(leftovers, 2, "no staging files left");
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_0600_even_when_forced_over_a_public_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("a.key");
        let output = |contents| Output {
            path: key.clone(),
            contents,
            access: Access::Private,
        };
        write_all(&[output("one")], false).unwrap();
        assert_eq!(mode(&key), 0o600);
        std::fs::remove_file(&key).unwrap();
        std::fs::write(&key, "world-readable").unwrap();
        write_all(&[output("two")], true).unwrap();
        assert_eq!(mode(&key), 0o600);
        assert_eq!(std::fs::read_to_string(&key).unwrap(), "two");
    }

    #[test]
    fn stems() {
        assert_eq!(file_stem("*.lab.com").unwrap(), "wildcard.lab.com");
        assert_eq!(file_stem("::1").unwrap(), "__1");
        assert_eq!(file_stem("mail.lab.com").unwrap(), "mail.lab.com");
        assert!(file_stem("../../etc/cron.d/x").is_err());
        assert!(file_stem("CN=Contoso, O=Mail").is_err());
    }
}
