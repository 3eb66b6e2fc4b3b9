//! Mailbox databases: `Get-MailboxDatabase` and
//! `Set-MailboxDatabase -RpcClientAccessServer`, as reads and edits of the
//! config's `[[database]]` tables.

use std::path::Path;

use toml_edit::{DocumentMut, Item, TableLike, Value};

use super::edit::{document, edit_config, existing, validated, Edit};
use super::error::DirectoryError;
use crate::config::{self, Config};

/// Which databases an edit applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseSelector {
    /// Every `[[database]]` of the file (at least one must exist).
    All,
    /// These names, matched case-insensitively (each must exist).
    Names(Vec<String>),
}

/// One database as the admin API and `database get` show it.
pub use crate::api::DatabaseView as DatabaseInfo;

/// The databases of `cfg`, in file order.
pub fn list_databases(cfg: &Config) -> Vec<DatabaseInfo> {
    cfg.databases
        .iter()
        .map(|d| DatabaseInfo::configured(&d.name, d.rpc_client_access_server.as_deref()))
        .collect()
}

/// Checks `Set-MailboxDatabase NAME -RpcClientAccessServer FQDN` against
/// `cfg` without writing anything (with `[cluster]` the value goes to etcd,
/// not to the file): `name` (case-insensitive) must be one of `cfg`'s
/// databases ([`DirectoryError::UnknownDatabase`]) and `fqdn` a host name as
/// the config's own check wants it ([`DirectoryError::BadValue`]). Returns
/// the database's name as configured.
pub fn check_database_rpc(cfg: &Config, name: &str, fqdn: &str) -> Result<String, DirectoryError> {
    let selected = select(
        cfg,
        &DatabaseSelector::Names(vec![name.to_owned()]),
        &cfg.path,
    )?;
    config::dns_name(fqdn).map_err(|why| DirectoryError::BadValue {
        key: "database.rpc_client_access_server",
        why,
    })?;
    selected
        .into_iter()
        .next()
        .ok_or_else(|| DirectoryError::NoDatabase {
            path: cfg.path.clone(),
            why: "no name given".to_string(),
        })
}

/// What `set` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetOutcome {
    /// The selected databases, as named in the file.
    pub selected: Vec<String>,
    /// Those whose value changed (the others already had it).
    pub changed: Vec<String>,
}

/// Sets `rpc_client_access_server = fqdn` on the selected databases of the
/// config file at `config_path`, keeping the file's comments and layout.
/// The result is validated before it is written (atomically); an invalid
/// result (a bad `fqdn`) is refused and the file is left as it was.
/// Returns the names (as written in the file) whose value changed; when none
/// changed, the file is not rewritten. Blocking file I/O: from async code,
/// call it on a blocking thread.
pub fn set_database_rpc(
    config_path: &Path,
    names: &DatabaseSelector,
    fqdn: &str,
) -> Result<Vec<String>, DirectoryError> {
    set_database_rpc_outcome(config_path, names, fqdn).map(|o| o.changed)
}

pub(crate) fn set_database_rpc_outcome(
    path: &Path,
    selector: &DatabaseSelector,
    fqdn: &str,
) -> Result<SetOutcome, DirectoryError> {
    edit_config(path, |text| {
        let text = existing(path, text)?;
        let cfg = config::parse(text, path).map_err(DirectoryError::Config)?;
        let selected = select(&cfg, selector, path)?;
        let mut doc = document(text, path)?;
        let changed = set_in_document(&mut doc, &selected, fqdn, path)?;
        let text = if changed.is_empty() {
            None
        } else {
            Some(validated(doc.to_string(), path)?)
        };
        Ok(Edit {
            text,
            outcome: SetOutcome {
                selected: selected.clone(),
                changed,
            },
        })
    })
}

/// The names `selector` picks in `cfg`, as written there.
fn select(
    cfg: &Config,
    selector: &DatabaseSelector,
    path: &Path,
) -> Result<Vec<String>, DirectoryError> {
    let known: Vec<String> = cfg.databases.iter().map(|d| d.name.clone()).collect();
    match selector {
        DatabaseSelector::All if known.is_empty() => Err(DirectoryError::NoDatabase {
            path: path.to_path_buf(),
            why: "--all, but the file has no [[database]]".to_string(),
        }),
        DatabaseSelector::All => Ok(known),
        DatabaseSelector::Names(names) if names.is_empty() => Err(DirectoryError::NoDatabase {
            path: path.to_path_buf(),
            why: "no name given".to_string(),
        }),
        DatabaseSelector::Names(names) => {
            let unknown: Vec<String> = names
                .iter()
                .filter(|n| !known.iter().any(|k| k.eq_ignore_ascii_case(n)))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(DirectoryError::UnknownDatabase {
                    path: path.to_path_buf(),
                    names: unknown,
                    known,
                });
            }
            Ok(known
                .into_iter()
                .filter(|k| names.iter().any(|n| k.eq_ignore_ascii_case(n)))
                .collect())
        }
    }
}

/// Sets the value in the document's database tables named in `selected`;
/// returns the names whose value changed.
fn set_in_document(
    doc: &mut DocumentMut,
    selected: &[String],
    fqdn: &str,
    path: &Path,
) -> Result<Vec<String>, DirectoryError> {
    let mut changed = Vec::new();
    let mut visit = |table: &mut dyn TableLike| {
        let Some(name) = table.get("name").and_then(Item::as_str).map(str::to_string) else {
            return;
        };
        if !selected.iter().any(|s| s.eq_ignore_ascii_case(&name)) {
            return;
        }
        let key = "rpc_client_access_server";
        if table.get(key).and_then(Item::as_str) == Some(fqdn) {
            return;
        }
        set_string(table, key, fqdn);
        changed.push(name);
    };
    match doc.get_mut("database") {
        Some(Item::ArrayOfTables(tables)) => tables.iter_mut().for_each(|t| visit(t)),
        Some(Item::Value(Value::Array(values))) => {
            for v in values.iter_mut() {
                if let Some(t) = v.as_inline_table_mut() {
                    visit(t);
                }
            }
        }
        _ => {
            return Err(DirectoryError::Layout {
                path: path.to_path_buf(),
                why: "`database` is not an array of tables".to_string(),
            })
        }
    }
    Ok(changed)
}

/// Sets `key = value`, keeping the old value's surrounding whitespace and
/// trailing comment.
fn set_string(table: &mut dyn TableLike, key: &str, value: &str) {
    if let Some(old) = table.get_mut(key).and_then(Item::as_value_mut) {
        let decor = old.decor().clone();
        *old = Value::from(value);
        *old.decor_mut() = decor;
    } else {
        table.insert(key, toml_edit::value(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"# The lab's array.
[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"

[listen]
https = "127.0.0.1:0"

[tls]
cert = "bundle.pem"   # cert and key in one file

[[member]]
name = "EX1"
address = "127.0.0.1:9001"

# Databases: RpcClientAccessServer per database.
[[database]]
name = "DB01"
rpc_client_access_server = "ex1.lab.local"   # before the array existed

[[database]]
name = "DB02"

[[database]]
name  =  "DB03"
rpc_client_access_server = "mail.lab.com"
"#;

    fn setup(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
        let path = dir.path().join("casarray.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    fn names(v: &[&str]) -> DatabaseSelector {
        DatabaseSelector::Names(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn set_by_name_keeps_comments_and_layout() {
        let (_d, path) = setup(CONFIG);
        let changed = set_database_rpc(&path, &names(&["db01", "DB02"]), "mail.lab.com").unwrap();
        assert_eq!(changed, ["DB01", "DB02"]);
        let want = CONFIG
            .replace(
                "rpc_client_access_server = \"ex1.lab.local\"   # before",
                "rpc_client_access_server = \"mail.lab.com\"   # before",
            )
            .replace(
                "name = \"DB02\"\n",
                "name = \"DB02\"\nrpc_client_access_server = \"mail.lab.com\"\n",
            );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), want);
        let cfg = config::load(&path).unwrap();
        assert_eq!(
            list_databases(&cfg),
            [
                ("DB01", "mail.lab.com"),
                ("DB02", "mail.lab.com"),
                ("DB03", "mail.lab.com")
            ]
            .map(|(n, r)| DatabaseInfo::configured(n, Some(r)))
        );
    }

    #[test]
    fn set_all_reports_only_changes_and_skips_needless_writes() {
        let (_d, path) = setup(CONFIG);
        let out =
            set_database_rpc_outcome(&path, &DatabaseSelector::All, "outlook.lab.com").unwrap();
        assert_eq!(out.selected, ["DB01", "DB02", "DB03"]);
        assert_eq!(out.changed, ["DB01", "DB02", "DB03"]);
        let before = std::fs::metadata(&path).unwrap().modified().unwrap();
        let out =
            set_database_rpc_outcome(&path, &DatabaseSelector::All, "outlook.lab.com").unwrap();
        assert!(out.changed.is_empty());
        assert_eq!(
            std::fs::metadata(&path).unwrap().modified().unwrap(),
            before
        );
    }

    #[test]
    fn inline_database_arrays_are_edited_too() {
        // `database = [...]` after [[member]] would belong to the member
        // table: it goes first.
        let text = format!(
        "database = [{{ name = \"DB01\" }}, {{ name = \"DB02\", rpc_client_access_server = \"x.lab\" }}]\n{}",
        CONFIG.split("# Databases").next().unwrap()
    );
        let (_d, path) = setup(&text);
        let changed = set_database_rpc(&path, &DatabaseSelector::All, "mail.lab.com").unwrap();
        assert_eq!(changed, ["DB01", "DB02"]);
        let cfg = config::load(&path).unwrap();
        assert!(cfg
            .databases
            .iter()
            .all(|d| d.rpc_client_access_server.as_deref() == Some("mail.lab.com")));
    }

    #[test]
    fn unknown_names_and_empty_selections_are_errors() {
        let (_d, path) = setup(CONFIG);
        let e = set_database_rpc(&path, &names(&["DB01", "DB09"]), "mail.lab.com").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: no database named \"DB09\" (databases: DB01, DB02, DB03)",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CONFIG);
        let none = CONFIG.split("# Databases").next().unwrap();
        std::fs::write(&path, none).unwrap();
        let e = set_database_rpc(&path, &DatabaseSelector::All, "mail.lab.com").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: no database selected: --all, but the file has no [[database]]",
                path.display()
            )
        );
    }

    #[test]
    fn an_invalid_result_is_refused_and_nothing_is_written() {
        let (_d, path) = setup(CONFIG);
        let e = set_database_rpc(&path, &names(&["DB02"]), "not a name").unwrap_err();
        assert!(matches!(e, DirectoryError::Refused(_)));
        assert_eq!(
        e.to_string(),
        format!(
            "refused (nothing written): the result would be invalid: {}:23:28: database.rpc_client_access_server: \"not a name\" is not a valid DNS name: only letters, digits, '-' and '.' are allowed",
            path.display()
        )
    );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CONFIG);
    }

    #[test]
    fn an_invalid_file_is_not_edited() {
        let (_d, path) = setup(&CONFIG.replace("address = \"127.0.0.1:9001\"", "address = \"x\""));
        let e = set_database_rpc(&path, &DatabaseSelector::All, "mail.lab.com").unwrap_err();
        assert!(matches!(e, DirectoryError::Config(_)), "{e}");
        let missing = path.with_file_name("nope.toml");
        let e = set_database_rpc(&missing, &DatabaseSelector::All, "mail.lab.com").unwrap_err();
        assert!(matches!(e, DirectoryError::Read { .. }), "{e}");
    }
}
