//! `New-ClientAccessArray`: the `[array]` table of the config file.
//!
//! On a file that does not exist yet, `array new` writes a starter config
//! (array, listeners, certificate paths, health defaults, commented member
//! and database examples); it is complete once members and the certificate
//! are there. On an existing file without `[array]`, it adds the table (the
//! result must validate). A file that already defines the same array is left
//! alone; one that defines another array is an error, as the cmdlet refuses
//! to create a second array.

use std::path::Path;

use toml_edit::{value, Item, Table};

use super::edit::{document, edit_config, validated, Edit};
use super::error::DirectoryError;
use crate::config;

/// What `array new` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NewArray {
    /// The file did not exist: a starter config was written.
    Created,
    /// `[array]` was added to the existing file.
    Added,
    /// The file already defines this very array.
    Unchanged,
}

/// The array's identity, as `New-ClientAccessArray -Name -Fqdn -Site`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ArrayIdentity<'a> {
    pub name: &'a str,
    pub fqdn: &'a str,
    pub site: &'a str,
}

pub(crate) fn new_array(path: &Path, id: ArrayIdentity<'_>) -> Result<NewArray, DirectoryError> {
    edit_config(path, |text| match text {
        None => {
            let text = starter(id);
            config::parse_array(&text, path).map_err(DirectoryError::Refused)?;
            Ok(Edit {
                text: Some(text),
                outcome: NewArray::Created,
            })
        }
        Some(text) => {
            let mut doc = document(text, path)?;
            if doc.contains_key("array") {
                let (a, _) = config::parse_array(text, path).map_err(DirectoryError::Config)?;
                if a.name == id.name && a.fqdn == id.fqdn && a.site == id.site {
                    return Ok(Edit {
                        text: None,
                        outcome: NewArray::Unchanged,
                    });
                }
                return Err(DirectoryError::ArrayExists {
                    path: path.to_path_buf(),
                    name: a.name,
                    fqdn: a.fqdn,
                    site: a.site,
                });
            }
            let mut table = Table::new();
            table.insert("name", value(id.name));
            table.insert("fqdn", value(id.fqdn));
            table.insert("site", value(id.site));
            // Before every other table.
            table.set_position(-1);
            table.decor_mut().set_suffix("");
            doc.insert("array", Item::Table(table));
            let text = with_blank_line_after_array(&doc.to_string());
            Ok(Edit {
                text: Some(validated(text, path)?),
                outcome: NewArray::Added,
            })
        }
    })
}

/// A blank line between the inserted `[array]` table and what follows.
fn with_blank_line_after_array(text: &str) -> String {
    let Some(start) = text.find("[array]\n") else {
        return text.to_string();
    };
    let mut end = start + "[array]\n".len();
    for line in text[end..].split_inclusive('\n') {
        let t = line.trim_start();
        if t.starts_with('[') || t.starts_with('#') || t.trim().is_empty() {
            break;
        }
        end += line.len();
    }
    if text[end..].starts_with('\n') || end == text.len() {
        return text.to_string();
    }
    format!("{}\n{}", &text[..end], &text[end..])
}

/// A TOML basic string holding `s`.
fn quote(s: &str) -> String {
    value(s).to_string().trim().to_string()
}

/// The starter config of a new array.
fn starter(id: ArrayIdentity<'_>) -> String {
    let (name, fqdn, site) = (quote(id.name), quote(id.fqdn), quote(id.site));
    let file = |ext: &str| quote(&format!("certs/{}.{ext}", id.fqdn));
    let (cert, key) = (file("crt"), file("key"));
    format!(
        r#"# casarray config, started by `casarray array new`.
# Add the members (Client Access servers) and the certificate, then run
# `casarray check --config <this file>`.

[array]
name = {name}
fqdn = {fqdn}                         # the RPC client access endpoint name
site = {site}
# public_names = [{fqdn}]             # HTTPS names clients use; default [fqdn]
# public_port = 443                   # the port clients reach them on; default 443

[listen]
https = "0.0.0.0:443"
admin = "127.0.0.1:9090"

[tls]
cert = {cert}      # base64 PEM, leaf first, then the chain
key = {key}

[health]
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2

# [[member]]
# name = "EX1"
# address = "10.0.0.11:443"
# fqdn = "ex1.lab.local"

# [[database]]
# name = "DB01"
# rpc_client_access_server = {fqdn}
"#
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: ArrayIdentity<'static> = ArrayIdentity {
        name: "CASArray1",
        fqdn: "outlook.lab.com",
        site: "Lab-Site",
    };

    #[test]
    fn creates_a_starter_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("casarray.toml");
        assert_eq!(new_array(&path, ID).unwrap(), NewArray::Created);
        let text = std::fs::read_to_string(&path).unwrap();
        let (a, _) = config::parse_array(&text, &path).unwrap();
        assert_eq!(
            (a.name.as_str(), a.fqdn.as_str(), a.site.as_str()),
            ("CASArray1", "outlook.lab.com", "Lab-Site")
        );
        assert_eq!(a.public_names, ["outlook.lab.com"]);
        assert!(text.contains("cert = \"certs/outlook.lab.com.crt\""));
        // Completing it makes a valid config.
        std::fs::create_dir(dir.path().join("certs")).unwrap();
        for f in ["certs/outlook.lab.com.crt", "certs/outlook.lab.com.key"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let done = text.replace(
            "# [[member]]\n# name = \"EX1\"\n# address = \"10.0.0.11:443\"",
            "[[member]]\nname = \"EX1\"\naddress = \"10.0.0.11:443\"",
        );
        config::parse(&done, &path).unwrap();
        // Running it again with the same values is a no-op.
        assert_eq!(new_array(&path, ID).unwrap(), NewArray::Unchanged);
    }

    #[test]
    fn refuses_bad_names_and_a_second_array() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("casarray.toml");
        let bad = ArrayIdentity {
            fqdn: "outlook lab",
            ..ID
        };
        let e = new_array(&path, bad).unwrap_err();
        assert!(matches!(e, DirectoryError::Refused(_)), "{e}");
        assert!(!path.exists());
        new_array(&path, ID).unwrap();
        let other = ArrayIdentity {
            name: "Other",
            ..ID
        };
        let e = new_array(&path, other).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: an array is already defined: \"CASArray1\" (fqdn outlook.lab.com, site Lab-Site); edit [array] to change it",
                path.display()
            )
        );
    }

    #[test]
    fn adds_the_table_to_a_file_without_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
        let path = dir.path().join("casarray.toml");
        let rest = "# listeners\n[listen]\nhttps = \"127.0.0.1:0\"\n\n[tls]\ncert = \"bundle.pem\"\n\n[[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n";
        std::fs::write(&path, rest).unwrap();
        assert_eq!(new_array(&path, ID).unwrap(), NewArray::Added);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("[array]\nname = \"CASArray1\"\nfqdn = \"outlook.lab.com\"\nsite = \"Lab-Site\"\n\n{rest}")
        );
        config::load(&path).unwrap();
    }
}
