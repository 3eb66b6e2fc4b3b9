//! Edits of `dag.toml`: a server registering its address, members added,
//! a copy added or removed. Made with `toml_edit` (comments survive),
//! checked by parsing the result, and written atomically (temporary file,
//! fsync, rename, fsync of the directory); the caller holds the DAG lock
//! (see `lock`).

use std::path::Path;

use super::definition::{Definition, DefinitionError};

/// Reads `path` as an editable document.
fn read_doc(path: &Path) -> Result<toml_edit::DocumentMut, DefinitionError> {
    let text = std::fs::read_to_string(path).map_err(|source| DefinitionError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse()
        .map_err(|e: toml_edit::TomlError| DefinitionError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Checks the edited document and writes it atomically.
fn write_doc(path: &Path, doc: &toml_edit::DocumentMut) -> Result<Definition, DefinitionError> {
    let text = doc.to_string();
    let def = Definition::parse(&text, path)?;
    crate::atomic_file::write_atomically(path, text.as_bytes()).map_err(|source| {
        DefinitionError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(def)
}

fn tables_mut<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    key: &str,
) -> Option<&'a mut toml_edit::ArrayOfTables> {
    doc.get_mut(key).and_then(|i| i.as_array_of_tables_mut())
}

fn name_is(t: &toml_edit::Table, key: &str, name: &str) -> bool {
    t.get(key)
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.eq_ignore_ascii_case(name))
}

/// Records where member `name` listens (a server does it when it starts).
/// The caller holds the DAG lock.
pub fn register_member(
    path: &Path,
    name: &str,
    address: &str,
    fqdn: &str,
    tls: bool,
) -> Result<Definition, DefinitionError> {
    let mut doc = read_doc(path)?;
    let member = tables_mut(&mut doc, "member")
        .and_then(|ms| ms.iter_mut().find(|t| name_is(t, "name", name)))
        .ok_or_else(|| {
            DefinitionError::Edit(format!(
                "{name} is not a member of the DAG in {}",
                path.display()
            ))
        })?;
    member["address"] = toml_edit::value(address);
    member["fqdn"] = toml_edit::value(fqdn);
    member["tls"] = toml_edit::value(tls);
    write_doc(path, &doc)
}

/// Adds members that are not there yet (without copies). The caller holds
/// the DAG lock.
pub fn ensure_members(path: &Path, names: &[String]) -> Result<Definition, DefinitionError> {
    let mut doc = read_doc(path)?;
    if doc.get("member").is_none() {
        doc["member"] = toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new());
    }
    let members = tables_mut(&mut doc, "member").ok_or_else(|| {
        DefinitionError::Edit(format!("{}: `member` is not a table array", path.display()))
    })?;
    for name in names {
        if !members.iter().any(|t| name_is(t, "name", name)) {
            let mut t = toml_edit::Table::new();
            t["name"] = toml_edit::value(name.as_str());
            members.push(t);
        }
    }
    write_doc(path, &doc)
}

fn database_mut<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    path: &Path,
    database: &str,
) -> Result<&'a mut toml_edit::Table, DefinitionError> {
    tables_mut(doc, "database")
        .and_then(|ds| ds.iter_mut().find(|t| name_is(t, "name", database)))
        .ok_or_else(|| {
            DefinitionError::Edit(format!("no database {database} in {}", path.display()))
        })
}

/// Renumbers the copies 1..n in the order given.
fn renumber(copies: &mut toml_edit::ArrayOfTables, order: &[String]) {
    for t in copies.iter_mut() {
        let server = t.get("server").and_then(|v| v.as_str()).unwrap_or_default();
        if let Some(i) = order.iter().position(|s| s.eq_ignore_ascii_case(server)) {
            t["activation_preference"] = toml_edit::value(i64::try_from(i + 1).unwrap_or(1));
        }
    }
}

/// The servers of `copies` by activation preference.
fn by_preference(copies: &toml_edit::ArrayOfTables) -> Vec<String> {
    let mut list: Vec<(i64, String)> = copies
        .iter()
        .map(|t| {
            (
                t.get("activation_preference")
                    .and_then(|v| v.as_integer())
                    .unwrap_or(i64::MAX),
                t.get("server")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    list.sort();
    list.into_iter().map(|(_, s)| s).collect()
}

/// Adds a copy of `database` on `server` with activation preference
/// `preference` (default: last); the others are renumbered around it, as
/// `Add-MailboxDatabaseCopy` does. The caller holds the DAG lock.
pub fn add_copy(
    path: &Path,
    database: &str,
    server: &str,
    preference: Option<u32>,
) -> Result<Definition, DefinitionError> {
    let mut doc = read_doc(path)?;
    let member_name = Definition::parse(&doc.to_string(), path)?
        .member(server)
        .map(|m| m.name.clone())
        .ok_or_else(|| DefinitionError::Edit(format!("{server} is not a member of the DAG")))?;
    let db = database_mut(&mut doc, path, database)?;
    if db.get("copy").is_none() {
        db["copy"] = toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new());
    }
    let copies = db
        .get_mut("copy")
        .and_then(|i| i.as_array_of_tables_mut())
        .ok_or_else(|| DefinitionError::Edit(format!("{database}: `copy` is not a table array")))?;
    if copies.iter().any(|t| name_is(t, "server", server)) {
        return Err(DefinitionError::Edit(format!(
            "{database} already has a copy on {member_name}"
        )));
    }
    let mut order = by_preference(copies);
    let at = preference
        .map(|p| usize::try_from(p.max(1)).unwrap_or(usize::MAX) - 1)
        .unwrap_or(order.len())
        .min(order.len());
    order.insert(at, member_name.clone());
    let mut t = toml_edit::Table::new();
    t["server"] = toml_edit::value(member_name);
    t["activation_preference"] = toml_edit::value(1);
    copies.push(t);
    renumber(copies, &order);
    write_doc(path, &doc)
}

/// Removes the copy of `database` on `server`; the others are renumbered.
/// The caller holds the DAG lock (and has checked that it is not the
/// active copy).
pub fn remove_copy(
    path: &Path,
    database: &str,
    server: &str,
) -> Result<Definition, DefinitionError> {
    let mut doc = read_doc(path)?;
    let db = database_mut(&mut doc, path, database)?;
    let copies = db
        .get_mut("copy")
        .and_then(|i| i.as_array_of_tables_mut())
        .ok_or_else(|| DefinitionError::Edit(format!("{database} has no copies")))?;
    let Some(index) = copies.iter().position(|t| name_is(t, "server", server)) else {
        return Err(DefinitionError::Edit(format!(
            "{database} has no copy on {server}"
        )));
    };
    if copies.len() == 1 {
        return Err(DefinitionError::Edit(format!(
            "{server} holds the only copy of {database}"
        )));
    }
    copies.remove(index);
    let order = by_preference(copies);
    renumber(copies, &order);
    write_doc(path, &doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
# the lab's DAG
name = "DAG1"
failure_timeout = "2s"

[[member]]
name = "EX1"

[[member]]
name = "EX2"

[[database]]
name = "DB01"
description = "Local IT"
[[database.copy]]
server = "EX2"
activation_preference = 2
[[database.copy]]
server = "EX1"
activation_preference = 1
"#;

    #[test]
    fn edits_keep_comments_and_renumber() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dag.toml");
        std::fs::write(&path, TWO).unwrap();
        ensure_members(&path, &["EX1".into(), "EX3".into()]).unwrap();
        let def = register_member(&path, "ex3", "127.0.0.1:9", "ex3.lab.local", true).unwrap();
        let ex3 = def.member("EX3").unwrap();
        assert_eq!(ex3.address.as_deref(), Some("127.0.0.1:9"));
        assert!(ex3.tls);
        assert!(register_member(&path, "EX9", "x", "y", false).is_err());

        let def = add_copy(&path, "DB01", "ex3", Some(1)).unwrap();
        let order: Vec<_> = def.databases[0]
            .copies
            .iter()
            .map(|c| (c.server.as_str(), c.activation_preference))
            .collect();
        assert_eq!(order, [("EX3", 1), ("EX1", 2), ("EX2", 3)]);
        assert!(add_copy(&path, "DB01", "EX3", None).is_err(), "twice");
        assert!(add_copy(&path, "DB09", "EX3", None).is_err());
        let def = remove_copy(&path, "DB01", "EX1").unwrap();
        let order: Vec<_> = def.databases[0]
            .copies
            .iter()
            .map(|c| (c.server.as_str(), c.activation_preference))
            .collect();
        assert_eq!(order, [("EX3", 1), ("EX2", 2)]);
        remove_copy(&path, "DB01", "EX2").unwrap();
        assert!(remove_copy(&path, "DB01", "EX3").is_err(), "the only copy");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# the lab's DAG"), "{text}");
    }
}
