//! Copy management: `Add-MailboxDatabaseCopy` (the definition gets the
//! copy; its server opens it at its next tick and seeds it from the active
//! copy), `Remove-MailboxDatabaseCopy`, `Suspend-` and
//! `Resume-MailboxDatabaseCopy` (the cluster state records it; copying
//! stops and starts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::api::{err, ApiError};
use super::definition_edit;
use super::report::CopyStatus;
use super::{lock, Dag};

/// How long `copy add` waits for the new copy to be seeded and caught up
/// by default: 60 s.
pub const ADD_WAIT: Duration = Duration::from_secs(60);

async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, ApiError> + Send + 'static,
) -> Result<R, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| err(500, e.to_string()))?
}

/// Adds a copy of `database` on `server`; with `wait`, returns once it is
/// `Healthy` with empty queues (at most `ADD_WAIT`).
pub async fn add_copy(
    dag: &Arc<Dag>,
    database: &str,
    server: &str,
    preference: Option<u32>,
    wait: bool,
) -> Result<Value, ApiError> {
    let def = dag.def();
    let db = def
        .database(database)
        .ok_or_else(|| err(404, format!("no database {database} in the DAG")))?;
    let member = def
        .member(server)
        .ok_or_else(|| err(404, format!("{server} is not a member of the DAG")))?;
    if db.copy_on(server).is_some() {
        return Err(err(
            409,
            format!("{} already has a copy on {}", db.name, member.name),
        ));
    }
    let (database, server) = (db.name.clone(), member.name.clone());
    let d = Arc::clone(dag);
    let (name, srv) = (database.clone(), server.clone());
    let def = blocking(move || {
        let _guard =
            lock::lock(&d.files.lock, lock::LOCK_WAIT).map_err(|e| err(503, e.to_string()))?;
        definition_edit::add_copy(&d.files.definition, &name, &srv, preference)
            .map_err(|e| err(409, e.to_string()))
    })
    .await?;
    let d = Arc::clone(dag);
    let _ = tokio::task::spawn_blocking(move || d.refresh_definition()).await;
    dag.kick();
    let preference = def
        .database(&database)
        .and_then(|d| d.copy_on(&server))
        .map_or(0, |c| c.activation_preference);
    tracing::info!(server = %dag.me(), database = %database, copy = %server, preference,
        "added a copy of {database} on {server} (activation preference {preference})");
    if wait {
        let deadline = Instant::now() + ADD_WAIT;
        loop {
            if let Some(r) = dag.report_of(&server, &database) {
                if r.status == CopyStatus::Healthy && r.copy_queue() == 0 && r.replay_queue() == 0 {
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(err(
                    504,
                    format!("the copy of {database} on {server} was added but is not healthy yet"),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let report = dag.report_of(&server, &database);
    Ok(json!({
        "database": database,
        "server": server,
        "activation_preference": preference,
        "status": report.as_ref().map_or(CopyStatus::Initializing, |r| r.status),
        "copy_queue": report.as_ref().map_or(0, |r| r.copy_queue()),
        "replay_queue": report.as_ref().map_or(0, |r| r.replay_queue()),
    }))
}

/// Removes the copy of `database` on `server` (not the active one).
pub async fn remove_copy(dag: &Arc<Dag>, database: &str, server: &str) -> Result<Value, ApiError> {
    let def = dag.def();
    let db = def
        .database(database)
        .ok_or_else(|| err(404, format!("no database {database} in the DAG")))?;
    let copy = db
        .copy_on(server)
        .ok_or_else(|| err(404, format!("{} has no copy on {server}", db.name)))?;
    let (database, server) = (db.name.clone(), copy.server.clone());
    if dag
        .cluster()
        .db(&database)
        .is_some_and(|s| s.active.eq_ignore_ascii_case(&server))
    {
        return Err(err(
            409,
            format!("{server} holds the active copy of {database}: move it first (move-active)"),
        ));
    }
    let d = Arc::clone(dag);
    let (name, srv) = (database.clone(), server.clone());
    blocking(move || {
        let _guard =
            lock::lock(&d.files.lock, lock::LOCK_WAIT).map_err(|e| err(503, e.to_string()))?;
        let st = super::state::read(&d.def().state).map_err(|e| err(503, e.to_string()))?;
        if st
            .db(&name)
            .is_some_and(|s| s.active.eq_ignore_ascii_case(&srv))
        {
            return Err(err(409, format!("{srv} holds the active copy of {name}")));
        }
        definition_edit::remove_copy(&d.files.definition, &name, &srv)
            .map_err(|e| err(409, e.to_string()))
    })
    .await?;
    let d = Arc::clone(dag);
    let _ = tokio::task::spawn_blocking(move || d.refresh_definition()).await;
    dag.kick();
    tracing::info!(server = %dag.me(), database = %database, copy = %server,
        "removed the copy of {database} on {server}");
    Ok(json!({"database": database, "server": server, "removed": true}))
}

/// Suspends (`true`) or resumes the copy of `database` on `server`.
pub async fn set_suspended(
    dag: &Arc<Dag>,
    database: &str,
    server: &str,
    suspend: bool,
) -> Result<Value, ApiError> {
    let def = dag.def();
    let db = def
        .database(database)
        .ok_or_else(|| err(404, format!("no database {database} in the DAG")))?;
    let copy = db
        .copy_on(server)
        .ok_or_else(|| err(404, format!("{} has no copy on {server}", db.name)))?;
    let (database, server) = (db.name.clone(), copy.server.clone());
    let d = Arc::clone(dag);
    let (name, srv) = (database.clone(), server.clone());
    blocking(move || {
        let (r, _) = d
            .update_state(|s| -> Result<(), ApiError> {
                let x = s
                    .db_mut(&name)
                    .ok_or_else(|| err(503, format!("no state for {name} yet")))?;
                if suspend && x.active.eq_ignore_ascii_case(&srv) {
                    return Err(err(409, format!("{srv} holds the active copy of {name}: an active copy cannot be suspended")));
                }
                x.suspended.retain(|v| !v.eq_ignore_ascii_case(&srv));
                if suspend {
                    x.suspended.insert(srv.clone());
                }
                Ok(())
            })
            .map_err(|e| err(503, e.to_string()))?;
        r
    })
    .await?;
    dag.kick();
    tracing::info!(server = %dag.me(), database = %database, copy = %server,
        "{} the copy of {database} on {server}", if suspend { "suspended" } else { "resumed" });
    Ok(json!({"database": database, "server": server, "suspended": suspend}))
}
