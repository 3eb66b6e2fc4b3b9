//! The DAG commands: `Get-MailboxDatabaseCopyStatus`,
//! `Move-ActiveMailboxDatabase`, `Add-`/`Remove-`/`Suspend-`/
//! `Resume-MailboxDatabaseCopy`, as calls to the running array's admin API
//! (which passes the changes to the members). The config file gives the
//! admin address and the token.
//!
//! `copy-status` exits 0 whenever the array answered (a server being down
//! is a status, not an error); the changes exit non-zero with the reason
//! when the DAG refused them.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use http::Method;
use serde_json::{json, Value};

use super::table;
use crate::api::client::{block_on, AdminClient};
use crate::api::DatabaseView;
use crate::config::Config;

/// How long `copy-status` waits for the array: 10 s.
const STATUS_WAIT: Duration = Duration::from_secs(10);
/// How long a change may take (a switchover catching up): 11 minutes.
const CHANGE_WAIT: Duration = Duration::from_secs(660);

/// What a `database copy ...` command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyChange {
    Add { preference: u32 },
    Remove,
    Suspend,
    Resume,
}

/// `casarray database copy-status`: the copies of `db` (or of every
/// database), as a table or as the admin API's JSON.
pub fn copy_status(
    cfg: &Config,
    admin: Option<SocketAddr>,
    db: Option<&str>,
    as_json: bool,
) -> anyhow::Result<String> {
    let client = client(cfg, admin, STATUS_WAIT, false)?;
    let dbs: Vec<DatabaseView> = block_on(async move { client.get("/api/databases").await })
        .context("cannot start a runtime")??;
    let dbs: Vec<DatabaseView> = match db {
        Some(name) => {
            let found: Vec<_> = dbs
                .into_iter()
                .filter(|d| d.name.eq_ignore_ascii_case(name))
                .collect();
            if found.is_empty() {
                anyhow::bail!("no database named \"{name}\"");
            }
            found
        }
        None => dbs,
    };
    if as_json {
        return Ok(serde_json::to_string_pretty(&dbs)? + "\n");
    }
    Ok(render_copy_status(&dbs))
}

/// `Get-MailboxDatabaseCopyStatus`'s table: one row per copy, `DB\SERVER`.
pub(crate) fn render_copy_status(dbs: &[DatabaseView]) -> String {
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for d in dbs {
        if d.copies.is_empty() {
            notes.push(format!(
                "{}: no copies known (no DAG, or no member answered)",
                d.name
            ));
        }
        for c in &d.copies {
            rows.push(vec![
                format!("{}\\{}", d.name, c.server),
                c.status.clone(),
                c.copy_queue.to_string(),
                c.replay_queue.to_string(),
                c.activation_preference.to_string(),
            ]);
        }
        if !d.copies.is_empty() && d.active.is_none() {
            notes.push(format!("{}: no copy is mounted now", d.name));
        }
    }
    let mut out = String::new();
    if !rows.is_empty() {
        out = table::render(
            &[
                "Name",
                "Status",
                "CopyQueueLength",
                "ReplayQueueLength",
                "ActivationPreference",
            ],
            &rows,
        );
    }
    for n in notes {
        out.push_str(&n);
        out.push('\n');
    }
    out
}

/// `casarray database move-active DB --server NAME`: returns once the copy
/// on NAME is mounted.
pub fn move_active(
    cfg: &Config,
    admin: Option<SocketAddr>,
    db: &str,
    server: &str,
) -> anyhow::Result<String> {
    let path = format!("/api/databases/{}/move-active", segment(db)?);
    let body = json!({ "server": server });
    let done = change(cfg, admin, &path, Method::POST, Some(body))?;
    let active = done["active"].as_str().unwrap_or(server);
    let mut line = format!("{db}: active copy now on {active}");
    if let Some(from) = done["from"].as_str() {
        line.push_str(&format!(" (from {from}"));
        if let Some(lost) = done["lost_logs"].as_u64() {
            line.push_str(&format!(", {lost} logs lost"));
        }
        if let Some(ms) = done["took_ms"].as_u64() {
            line.push_str(&format!(", {:.1} s", ms as f64 / 1000.0));
        }
        line.push(')');
    }
    Ok(line + "\n")
}

/// `casarray database copy add|remove|suspend|resume DB --server NAME`.
pub fn copy_change(
    cfg: &Config,
    admin: Option<SocketAddr>,
    db: &str,
    server: &str,
    what: &CopyChange,
) -> anyhow::Result<String> {
    let (db_seg, server_seg) = (segment(db)?, segment(server)?);
    let (method, path, body, said) = match what {
        CopyChange::Add { preference } => (
            Method::POST,
            format!("/api/databases/{db_seg}/copies"),
            Some(json!({"server": server, "activation_preference": preference})),
            format!("copy of {db} added on {server} (activation preference {preference}), seeded"),
        ),
        CopyChange::Remove => (
            Method::DELETE,
            format!("/api/databases/{db_seg}/copies/{server_seg}"),
            None,
            format!("copy of {db} on {server} removed"),
        ),
        CopyChange::Suspend => (
            Method::POST,
            format!("/api/databases/{db_seg}/copies/{server_seg}/suspend"),
            None,
            format!("copy of {db} on {server} suspended"),
        ),
        CopyChange::Resume => (
            Method::POST,
            format!("/api/databases/{db_seg}/copies/{server_seg}/resume"),
            None,
            format!("copy of {db} on {server} resumed"),
        ),
    };
    let done = change(cfg, admin, &path, method, body)?;
    let mut line = said;
    if let (Some(status), Some(cq)) = (done["status"].as_str(), done["copy_queue"].as_u64()) {
        line.push_str(&format!(": {status}, copy queue {cq}"));
    }
    Ok(line + "\n")
}

fn change(
    cfg: &Config,
    admin: Option<SocketAddr>,
    path: &str,
    method: Method,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let client = client(cfg, admin, CHANGE_WAIT, true)?;
    let path = path.to_owned();
    block_on(async move {
        client
            .call::<Value, Value>(method, &path, body.as_ref())
            .await
    })
    .context("cannot start a runtime")?
    .map_err(Into::into)
}

/// A client of the array of `cfg` (at `admin`, default its `listen.admin`),
/// with its token when `token` (changes need it).
fn client(
    cfg: &Config,
    admin: Option<SocketAddr>,
    timeout: Duration,
    token: bool,
) -> anyhow::Result<AdminClient> {
    let client = AdminClient::new(admin.unwrap_or(cfg.listen.admin), timeout);
    if !token {
        return Ok(client);
    }
    let Some(file) = &cfg.admin.token_file else {
        anyhow::bail!(
            "{}: [admin] token_file is not set: DAG changes through the admin API need the token",
            cfg.path.display()
        );
    };
    Ok(client.with_token(read_token(file)?))
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read the admin token", path.display()))?;
    Ok(text.trim().to_owned())
}

/// A database or server name as a URL path segment: names are letters,
/// digits and `-_.`; anything else is refused rather than escaped.
fn segment(name: &str) -> anyhow::Result<&str> {
    if !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        Ok(name)
    } else {
        anyhow::bail!("\"{name}\" is not a database or server name (letters, digits, -, _, .)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::CopyView;

    #[test]
    fn copy_status_reads_like_exchange() {
        let copy = |server: &str, pref, status: &str, cq| CopyView {
            server: server.into(),
            activation_preference: pref,
            status: status.into(),
            copy_queue: cq,
            replay_queue: 0,
        };
        let mut db01 = DatabaseView::configured("DB01", Some("mail.lab.com"));
        db01.active = Some("EX1".into());
        db01.copies = vec![copy("EX1", 1, "Mounted", 0), copy("EX2", 2, "Healthy", 3)];
        let mut db02 = DatabaseView::configured("DB02", None);
        db02.copies = vec![
            copy("EX2", 1, "ServiceDown", 0),
            copy("EX1", 2, "Initializing", 0),
        ];
        let text = render_copy_status(&[db01, db02, DatabaseView::configured("DB03", None)]);
        assert_eq!(
            text,
            "Name     Status       CopyQueueLength ReplayQueueLength ActivationPreference\n\
             ----     ------       --------------- ----------------- --------------------\n\
             DB01\\EX1 Mounted      0               0                 1\n\
             DB01\\EX2 Healthy      3               0                 2\n\
             DB02\\EX2 ServiceDown  0               0                 1\n\
             DB02\\EX1 Initializing 0               0                 2\n\
             DB02: no copy is mounted now\n\
             DB03: no copies known (no DAG, or no member answered)\n"
        );
    }

    #[test]
    fn names_must_be_plain() {
        assert!(segment("DB01").is_ok());
        assert!(segment("EX-2.lab").is_ok());
        assert!(segment("../x").is_err());
        assert!(segment("").is_err());
    }
}
