//! `casarray cert ...`: the certificate workflow on files.
//!
//! The Exchange way, step by step: `new-ca` (a lab CA), `request` (key and
//! CSR, "New-ExchangeCertificate"), `issue` (what the CA does), `complete`
//! ("Import-ExchangeCertificate" of the CA's answer), `export` and `import`
//! (moving the certificate with its key to another server), `self-signed`,
//! and `show`.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::cli_files::{file_stem, read_text, write_all, Access, Output};
use super::pki::{self, KeyType};

/// `casarray cert` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CertCommand {
    /// Make a root CA: DIR/ca.crt and DIR/ca.key (valid 3650 days).
    NewCa {
        /// The CA's name (subject common name).
        #[arg(long)]
        name: String,
        /// Directory to write to; default the current one.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Key type: ecdsa-p256 (default) or rsa2048.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Make a private key and a certificate request: DIR/FQDN.key, DIR/FQDN.csr.
    Request {
        /// The name clients use; subject CN and first SAN.
        #[arg(long)]
        fqdn: String,
        /// More names (DNS names or IP addresses); repeatable.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        /// Directory to write to; default the current one.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Key type: ecdsa-p256 (default) or rsa2048.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Issue a certificate for a request with the CA in DIR (ca.crt, ca.key).
    Issue {
        /// Directory holding ca.crt and ca.key.
        #[arg(long, value_name = "DIR")]
        ca: PathBuf,
        /// The certificate request (PEM).
        #[arg(long, value_name = "FILE")]
        csr: PathBuf,
        /// Where to write the certificate.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Validity in days, 1 to 36500.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Complete a pending request: check the issued certificate against the
    /// key and write it with its chain (leaf first).
    Complete {
        /// The private key made by `request`.
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// The certificate the CA issued.
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        /// The CA's certificate(s), appended after the leaf.
        #[arg(long, value_name = "FILE")]
        chain: Option<PathBuf>,
        /// Where to write the chain.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Make a self-signed certificate: DIR/FQDN.crt, DIR/FQDN.key.
    SelfSigned {
        /// The name clients use; subject CN and first SAN.
        #[arg(long)]
        fqdn: String,
        /// More names (DNS names or IP addresses); repeatable.
        #[arg(long = "san", value_name = "NAME")]
        sans: Vec<String>,
        /// Directory to write to; default the current one.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Validity in days, 1 to 36500.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Key type: ecdsa-p256 (default) or rsa2048.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: KeyType,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
    /// Print a certificate: subject, SANs, issuer, serial, validity,
    /// SHA-256 fingerprint, status.
    Show {
        /// A PEM file (a certificate, a chain or a bundle).
        file: PathBuf,
    },
    /// Write a certificate chain and its key into one PEM bundle (mode 0600).
    Export {
        #[arg(long, value_name = "FILE")]
        cert: PathBuf,
        #[arg(long, value_name = "FILE")]
        key: PathBuf,
        /// Where to write the bundle.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Overwrite an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Split a bundle into DIR/NAME.crt and DIR/NAME.key (NAME: the
    /// certificate's first DNS name).
    Import {
        #[arg(long, value_name = "FILE")]
        bundle: PathBuf,
        /// Directory to write to; default the current one.
        #[arg(long, value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
    },
}

/// Runs one `casarray cert` subcommand; what it wrote or shows goes to
/// stdout.
pub fn run(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::NewCa {
            name,
            out,
            key_type,
            force,
        } => {
            let ca = pki::new_ca_with(&name, key_type)?;
            write_pair(&out, "ca", &ca.cert_pem, "crt", &ca.key_pem, force)
        }
        CertCommand::Request {
            fqdn,
            sans,
            out,
            key_type,
            force,
        } => {
            let req = pki::request_with(&fqdn, &sans, key_type)?;
            write_pair(
                &out,
                &file_stem(&fqdn)?,
                &req.csr_pem,
                "csr",
                &req.key_pem,
                force,
            )
        }
        CertCommand::Issue {
            ca,
            csr,
            out,
            days,
            force,
        } => {
            let (ca_cert, ca_key) = (ca.join("ca.crt"), ca.join("ca.key"));
            let cert = pki::issue(
                &read_text(&ca_cert)?,
                &read_text(&ca_key)?,
                &read_text(&csr)?,
                days,
            )
            .with_context(|| {
                format!(
                    "cannot issue {} with the CA {}",
                    csr.display(),
                    ca_cert.display()
                )
            })?;
            write_all(&[public(out, &cert)], force)
        }
        CertCommand::Complete {
            key,
            cert,
            chain,
            out,
            force,
        } => {
            let chain_pem = chain.as_deref().map(read_text).transpose()?;
            let completed =
                pki::complete(&read_text(&key)?, &read_text(&cert)?, chain_pem.as_deref())
                    .with_context(|| {
                        format!("cannot complete {} with {}", cert.display(), key.display())
                    })?;
            write_all(&[public(out, &completed)], force)
        }
        CertCommand::SelfSigned {
            fqdn,
            sans,
            out,
            days,
            key_type,
            force,
        } => {
            let made = pki::self_signed_with(&fqdn, &sans, days, key_type)?;
            write_pair(
                &out,
                &file_stem(&fqdn)?,
                &made.cert_pem,
                "crt",
                &made.key_pem,
                force,
            )
        }
        CertCommand::Show { file } => {
            let summary = pki::show(&read_text(&file)?)
                .with_context(|| format!("cannot show {}", file.display()))?;
            print!("{summary}");
            Ok(())
        }
        CertCommand::Export {
            cert,
            key,
            out,
            force,
        } => {
            let bundle = pki::export(&read_text(&cert)?, &read_text(&key)?).with_context(|| {
                format!("cannot export {} with {}", cert.display(), key.display())
            })?;
            write_all(
                &[Output {
                    path: out,
                    contents: &bundle,
                    access: Access::Private,
                }],
                force,
            )
        }
        CertCommand::Import { bundle, out, force } => {
            let imported = pki::import(&read_text(&bundle)?)
                .with_context(|| format!("cannot import {}", bundle.display()))?;
            let stem = file_stem(&imported.name)
                .with_context(|| format!("cannot import {}", bundle.display()))?;
            write_pair(
                &out,
                &stem,
                &imported.cert_pem,
                "crt",
                &imported.key_pem,
                force,
            )
        }
    }
}

/// Writes DIR/STEM.EXT (public) and DIR/STEM.key (private), creating DIR.
fn write_pair(
    dir: &Path,
    stem: &str,
    public_text: &str,
    ext: &str,
    key_pem: &str,
    force: bool,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    write_all(
        &[
            public(dir.join(format!("{stem}.{ext}")), public_text),
            Output {
                path: dir.join(format!("{stem}.key")),
                contents: key_pem,
                access: Access::Private,
            },
        ],
        force,
    )
}

fn public(path: PathBuf, contents: &str) -> Output<'_> {
    Output {
        path,
        contents,
        access: Access::Public,
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        cert: CertCommand,
    }

    fn parse(args: &[&str]) -> CertCommand {
        Cli::try_parse_from(std::iter::once("cert").chain(args.iter().copied()))
            .unwrap()
            .cert
    }

    #[test]
    fn parses_the_documented_flags() {
        match parse(&[
            "request",
            "--fqdn",
            "mail.lab.com",
            "--san",
            "a.lab.com",
            "--san",
            "b.lab.com",
            "--out",
            "certs",
            "--key-type",
            "rsa2048",
        ]) {
            CertCommand::Request {
                fqdn,
                sans,
                out,
                key_type,
                force,
            } => {
                assert_eq!(fqdn, "mail.lab.com");
                assert_eq!(sans, vec!["a.lab.com", "b.lab.com"]);
                assert_eq!(out, PathBuf::from("certs"));
                assert_eq!(key_type, KeyType::Rsa2048);
                assert!(!force);
            }
            other => panic!("{other:?}"),
        }
        match parse(&["issue", "--ca", "ca", "--csr", "x.csr", "--out", "x.crt"]) {
            CertCommand::Issue { days, .. } => assert_eq!(days, 365),
            other => panic!("{other:?}"),
        }
        assert!(
            Cli::try_parse_from(["cert", "new-ca", "--name", "X", "--key-type", "dsa"]).is_err()
        );
        assert!(matches!(
            parse(&["show", "x.crt"]),
            CertCommand::Show { .. }
        ));
    }

    #[test]
    fn the_whole_workflow_through_run() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        run(CertCommand::NewCa {
            name: "Lab Root CA".into(),
            out: d.join("ca"),
            key_type: KeyType::EcdsaP256,
            force: false,
        })
        .unwrap();
        run(CertCommand::Request {
            fqdn: "mail.lab.com".into(),
            sans: vec!["autodiscover.lab.com".into()],
            out: d.join("req"),
            key_type: KeyType::EcdsaP256,
            force: false,
        })
        .unwrap();
        run(CertCommand::Issue {
            ca: d.join("ca"),
            csr: d.join("req/mail.lab.com.csr"),
            out: d.join("issued.crt"),
            days: 90,
            force: false,
        })
        .unwrap();
        run(CertCommand::Complete {
            key: d.join("req/mail.lab.com.key"),
            cert: d.join("issued.crt"),
            chain: Some(d.join("ca/ca.crt")),
            out: d.join("mail.lab.com.crt"),
            force: false,
        })
        .unwrap();
        run(CertCommand::Export {
            cert: d.join("mail.lab.com.crt"),
            key: d.join("req/mail.lab.com.key"),
            out: d.join("mail.pem"),
            force: false,
        })
        .unwrap();
        run(CertCommand::Import {
            bundle: d.join("mail.pem"),
            out: d.join("other"),
            force: false,
        })
        .unwrap();
        run(CertCommand::Show {
            file: d.join("other/mail.lab.com.crt"),
        })
        .unwrap();

        // What import wrote is what the server loads.
        let key = super::super::load_certified_key(&crate::config::CertKeyPaths {
            cert: d.join("other/mail.lab.com.crt"),
            key: Some(d.join("other/mail.lab.com.key")),
        })
        .unwrap();
        assert_eq!(key.cert.len(), 2);
        let bundle = super::super::load_certified_key(&crate::config::CertKeyPaths {
            cert: d.join("mail.pem"),
            key: None,
        })
        .unwrap();
        assert_eq!(bundle.cert, key.cert);

        let again = run(CertCommand::NewCa {
            name: "Lab Root CA".into(),
            out: d.join("ca"),
            key_type: KeyType::EcdsaP256,
            force: false,
        })
        .unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
    }

    #[test]
    fn errors_name_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let err = run(CertCommand::Show {
            file: d.join("absent.crt"),
        })
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("absent.crt: cannot read"),
            "{err:#}"
        );

        run(CertCommand::SelfSigned {
            fqdn: "a.lab.com".into(),
            sans: vec![],
            out: d.to_path_buf(),
            days: 30,
            key_type: KeyType::EcdsaP256,
            force: false,
        })
        .unwrap();
        run(CertCommand::SelfSigned {
            fqdn: "b.lab.com".into(),
            sans: vec![],
            out: d.to_path_buf(),
            days: 30,
            key_type: KeyType::EcdsaP256,
            force: false,
        })
        .unwrap();
        let err = run(CertCommand::Export {
            cert: d.join("a.lab.com.crt"),
            key: d.join("b.lab.com.key"),
            out: d.join("x.pem"),
            force: false,
        })
        .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("a.lab.com.crt") && text.contains("b.lab.com.key"),
            "{text}"
        );
        assert!(text.contains("does not match"), "{text}");
        assert!(!d.join("x.pem").exists());
    }
}
